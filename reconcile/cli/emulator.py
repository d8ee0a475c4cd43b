"""`reconcile emulator serve|reset`: the built-in emulator of both platforms, from the command
line (the emulator itself imports nothing of reconcile)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconcile.cli.options import (
    DEFAULT_MANIFESTS,
    EXIT_OK,
    Finite,
    Group,
    shared_option,
    state_dir_for,
)
from reconcile.errors import ReconcileError

if TYPE_CHECKING:
    pass


@click.group(cls=Group)
def emulator() -> None:
    """The built-in emulator of the platforms' APIs (no account needed)."""


@emulator.command()
@click.option(
    "--state",
    "state_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON state to serve (it is not modified unless --persist).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=Finite(0),
    help="Delay every API request.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=Finite(0),
    help="Add up to this much random delay.",
)
@click.option(
    "--fail-rate",
    default=0.0,
    show_default=True,
    type=Finite(0, 1),
    help="Share of requests answered with 408/429/500.",
)
@click.option("--seed", type=int, help="Seed the injected faults so runs reproduce.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[,KEY=VALUE...]",
    callback=lambda ctx, param, specs: _parse_faults(specs),
    help="Inject a fault (repeatable): KIND is status, slow, reset, truncate, inconsistent, "
    "throttle or lost; keys: method, path (a glob), action (Qianfan), rate, times, status, "
    "delay_ms, reply (status|reset), rps, burst, retry_after, delta.",
)
@click.option("--persist", is_flag=True, help="Write every change back to the state file.")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Print a line per request (off for benchmarks: it costs a tenth of each request).",
)
def serve(
    state_file: Path,
    host: str,
    port: int,
    latency_ms: float,
    jitter_ms: float,
    fail_rate: float,
    seed: int | None,
    faults: list[Any],
    persist: bool,
    access_log: bool,
) -> int:
    """Serve the platforms' APIs over HTTP from a JSON state file.

    \b
    Examples:
      reconcile emulator serve --state examples/demo/emulator-state.json --port 8080
      reconcile emulator serve --state s.json --seed 7 \\
        --fault status,status=503,method=GET,rate=0.05 --fault lost,method=DELETE,rate=0.05 \\
        --fault throttle,rps=20,burst=40 --fault inconsistent,path=/v1/*/models,times=1
    """
    from reconcile.emulator import BadState, EmulatorSettings
    from reconcile.emulator import serve as run_server

    settings = EmulatorSettings(
        persist_path=state_file if persist else None,
        latency_ms=latency_ms,
        latency_jitter_ms=jitter_ms,
        fail_rate=fail_rate,
        seed=seed,
        faults=tuple(faults),
    )
    try:
        run_server(state_file, host, port, settings, access_log=access_log)
    except BadState as error:  # loaded before the server starts: nothing was served
        raise ReconcileError(
            str(error), hint=f'fix {state_file} (README, "The emulator", says what it holds)'
        ) from None
    except SystemExit as exit_:
        if exit_.code in (0, None):
            return EXIT_OK
        # uvicorn could not start (it logged why) and exits 3, which is reconcile's code for
        # an apply with failed deletes: said as an error of ours.
        raise ReconcileError(
            f"the emulator could not serve on {host}:{port} (uvicorn's error above says why)",
            hint="choose another --port or --host, or stop what already listens there",
        ) from None
    return EXIT_OK


def _parse_faults(specs: tuple[str, ...]) -> list[Any]:
    """`--fault` specs as the emulator's `Fault`s; a bad one is a usage error naming it."""
    from reconcile.emulator import Fault

    try:
        return [Fault.parse(spec) for spec in specs]
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="--fault") from None


@emulator.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=DEFAULT_MANIFESTS)
@shared_option("state_dir")
def reset(path: Path, state_dir: Path | None) -> int:
    """Reset the emulated platforms of PATH's manifests to their seed state.

    \b
    Example:
      reconcile emulator reset examples/demo
    """
    from reconcile.emulator.store import seed_record

    directory = state_dir_for(path, state_dir) / "emulator"
    removed = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for file in removed:
        file.unlink()
        seed_record(file).unlink(missing_ok=True)
    click.echo(f"Reset {len(removed)} emulated state file(s) in {directory}.")
    return EXIT_OK
