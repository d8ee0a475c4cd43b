"""A local stand-in for the platforms' APIs (Fabric, Qianfan), with auth, faults and latency.

An independent copy of the platforms' contract: nothing here imports the rest of ``reconcile``.
"""

from reconcile.emulator.app import Emulator, RequestRecord, create_app, serve
from reconcile.emulator.common import BadState
from reconcile.emulator.faults import ConnectionDropped, Fault
from reconcile.emulator.settings import EmulatorSettings

__all__ = [
    "BadState",
    "ConnectionDropped",
    "Emulator",
    "EmulatorSettings",
    "Fault",
    "RequestRecord",
    "create_app",
    "serve",
]
