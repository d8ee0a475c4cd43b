"""Platform providers, and the registry of platforms by their manifest `type`.

A platform is one entry of `PLATFORMS` (see `base.Platform`): how it signs, reads its errors,
opens its provider, and what its built-in emulator accepts. The app layer (`reconcile.wiring`)
opens providers from manifests through it; nothing here reads a manifest or the environment.
"""

from __future__ import annotations

from reconcile.providers import fabric, qianfan
from reconcile.providers.base import Platform
from reconcile.providers.fabric import EMULATOR_FABRIC_TOKEN
from reconcile.providers.qianfan import EMULATOR_QIANFAN_KEYS

#: Every platform, by its manifest `type`: a new platform is one more entry.
PLATFORMS: dict[str, Platform] = {
    platform.type: platform for platform in (fabric.PLATFORM, qianfan.PLATFORM)
}

__all__ = ["EMULATOR_FABRIC_TOKEN", "EMULATOR_QIANFAN_KEYS", "PLATFORMS", "Platform"]
