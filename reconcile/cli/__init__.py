"""The command line: the `reconcile` group, its commands (one module per family), and the edge
that turns exceptions into exit codes.

The commands are click declarations that parse, call the application layer, render and return
an exit code: `pipeline` (plan, apply, show, drift), `manifests` (validate, import, schema,
providers), `operations` (journal, force-unlock, state, report, forge), `emulator`; the options
they share and the exit codes are `options`.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from reconcile import __version__
from reconcile.cli import emulator, manifests, operations, pipeline
from reconcile.cli.options import (
    EXIT_BUG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Group,
    with_global_options,
)
from reconcile.console import echo_error
from reconcile.errors import ReconcileError
from reconcile.heap import exit_now, release
from reconcile.streams import readers_may_leave

# -- commands -----------------------------------------------------------------------------------


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RECONCILE"},
)
@click.version_option(__version__, prog_name="reconcile")
@click.option(
    "-C",
    "--chdir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run as if started in DIR (paths, .reconcile and saved plans are read from there).",
)
@click.option(
    "--log-level",
    type=click.Choice(("debug", "info", "warning"), case_sensitive=False),
    envvar="RECONCILE_LOG",
    show_envvar=True,
    help="The debug log: warning (default), info (failed and retried HTTP requests) or debug "
    "(every request, and each signature's canonical request); secrets are always redacted.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    show_envvar=True,
    help="Append the log to FILE instead of stderr.",
)
@with_global_options
def cli(chdir: Path | None, log_level: str | None, log_file: Path | None, **_: Any) -> None:
    """Make LLM model registries match the models declared in TOML manifests.

    Options shared by the commands (--state-dir, --parallelism, --notify, ...) are accepted
    before the command too, and every option can be set from the environment: RECONCILE_<NAME>
    before the command (RECONCILE_PARALLELISM=8), RECONCILE_<COMMAND>_<NAME> for a command's
    own (RECONCILE_PLAN_FORMAT=json); --help shows each one's variable.

    \b
    reconcile validate manifests/         check manifests, no network
    reconcile plan manifests/             list live state and show what would be deleted
    reconcile apply manifests/            delete it, after confirmation
    reconcile drift manifests/            how far live state drifted (read-only)
    reconcile import --provider NAME      write a manifest declaring what is live
    reconcile plan examples/demo          try it on the built-in emulator (no account needed)
    """
    if chdir is not None:
        os.chdir(chdir)
    from reconcile.colour import use_colour

    if use_colour(os.environ, isatty=False, no_color_flag=False):
        # FORCE_COLOR: click strips colour from output that is not a terminal unless told.
        click.get_current_context().color = True
    from reconcile.logs import configure_logging

    # Always: warnings (an emulator seed that changed, say) reach stderr, redacted, by default.
    configure_logging(log_level, log_file)


for _command in (
    *(manifests.validate, manifests.import_, manifests.schema, manifests.providers),
    *(pipeline.plan, pipeline.apply, pipeline.show, pipeline.drift),
    *(operations.journal, operations.force_unlock, operations.report, operations.state),
    *(operations.forge, emulator.emulator),
):
    cli.add_command(_command)


# -- the edge: exceptions to exit codes ---------------------------------------------------------


def run() -> NoReturn:
    """The `reconcile` program (the installed script, `python -m reconcile`): a command, then
    an exit that leaves what it made to the operating system (`heap.exit_now`)."""
    exit_now(main(exiting=True))


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """One command, its exit code returned; unless `exiting` (the process ends with it), what
    the command changed in the process is undone for a caller that goes on (tests)."""
    cwd = Path.cwd()
    try:
        with readers_may_leave():
            return _main(argv)
    finally:
        # `-C DIR` is this command's: a process that goes on (tests, a library caller) is back
        # where it was.
        os.chdir(cwd)
        if "reconcile.logs" in sys.modules:
            sys.modules["reconcile.logs"].remove_logging()
        if not exiting:
            # What a command kept or froze (`outlive_command`, `collector_paused`) is the
            # collector's again.
            release()
            gc.unfreeze()


def _main(argv: Sequence[str] | None) -> int:
    try:
        code = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted: nothing was deleted.", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as error:
        error.show()
        return EXIT_ERROR
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except ReconcileError as error:
        echo_error(str(error))
        return error.exit_code
    except OSError as error:
        # The machine said no (a missing folder, a full disk, no permission): not a bug.
        click.echo(
            f"Error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), err=True
        )
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("\nInterrupted: nothing was deleted.", err=True)
        return EXIT_INTERRUPTED
    except Exception as error:
        click.echo(
            f"reconcile {__version__}: unexpected error: {type(error).__name__}: {error}\n"
            "This is a bug in reconcile, not in your manifests; please report it with the "
            "command you ran.",
            err=True,
        )
        return EXIT_BUG
    return code if isinstance(code, int) else EXIT_OK
