"""The command line's shared options: each defined once, accepted before the subcommand too
and from `RECONCILE_<NAME>`, handed to a command as one `Run` record (and an `Outward` for the
commands that report outward); the exit codes every command returns.

Exit codes: 0 success or no changes; 1 error (nothing deleted); 2 changes present (plan with
--detailed-exitcode, drift); 3 apply finished with some deletes failed; 130 interrupted.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from reconcile.console import use_color, warn
from reconcile.errors import ReconcileError

if TYPE_CHECKING:
    from reconcile.events import Command as Reported
    from reconcile.manifest import Manifest
    from reconcile.notify import NotifyOn
    from reconcile.wiring import Options

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_PARTIAL = 3
EXIT_BUG = 70
EXIT_INTERRUPTED = 130


# -- shared options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """The options every command that talks to platforms shares."""

    state_dir: Path | None
    #: `--state URL`: the state store instead of the manifests' [state] table.
    state_url: str | None
    #: None: `auto`.
    parallelism: int | None
    max_parallelism: int
    color: bool
    quiet: bool
    insecure: bool
    #: Attempts per request and the timeout of one attempt; None: the manifest's policy.
    attempts: int | None
    timeout: float | None
    max_rps: float | None

    def options(self, path: Path) -> Options:
        from reconcile.wiring import Options

        return Options(
            state_dir=state_dir_for(path, self.state_dir),
            state_url=self.state_url,
            parallelism=self.parallelism,
            max_parallelism=self.max_parallelism,
            insecure=self.insecure,
            attempts=self.attempts,
            timeout=self.timeout,
            max_rps=self.max_rps,
        )


class Finite(click.FloatRange):
    """A number of seconds, a rate or a share within bounds, and finite: `click.FloatRange`
    lets nan through any bound (every comparison with it is false) and inf through a lower
    one; `--lock-timeout nan` then waited for the lock for ever."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        if not math.isfinite(converted):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return converted


class Parallelism(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 only
    """`auto` (None) or a whole number from 1 to 256."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or value == "auto":
            return None
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(value)
            except ValueError:
                self.fail(f"{value!r} is neither auto nor a whole number", param, ctx)
        if not 1 <= number <= 256:
            self.fail(f"{number} is not from 1 to 256", param, ctx)
        return number


class FileOrObject(click.ParamType):  # type: ignore[type-arg]
    """A local path, or an object of a state store (s3://BUCKET/KEY, kept as the URL)."""

    name = "FILE|s3://BUCKET/KEY"

    def __init__(self, *, exists: bool) -> None:
        self.exists = exists

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Path):
            return value
        text = str(value)
        if text.lower().startswith("s3://"):
            return text
        kind = click.Path(exists=self.exists, path_type=Path, dir_okay=self.exists)
        return kind.convert(text, param, ctx)


# -- options: each defined once, accepted before the subcommand too ------------------------------

#: param name -> its option, for the options commands share. `reconcile` takes them before the
#: subcommand as well (`reconcile --parallelism 8 plan` = `reconcile plan --parallelism 8`; given
#: in both places, the one after the subcommand wins), each also from `RECONCILE_<NAME>`.
GLOBAL: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {}


def global_option(*decls: str, envvar: str | None = None, **attrs: Any) -> None:
    name = click.Option(decls).name
    assert name is not None
    GLOBAL[name] = click.option(
        *decls, envvar=envvar or f"RECONCILE_{name.upper()}", show_envvar=True, **attrs
    )


def shared_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The shared option `name`, to declare on a command."""
    return GLOBAL[name]


global_option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the local journal, lock and emulator state live "
    "[default: .reconcile beside the manifests].",
)
global_option(
    "--state",
    "state_url",
    envvar="RECONCILE_STATE",
    metavar="URL",
    help="Where the lock, the journal and saved plans live: local, a folder, or "
    "s3://BUCKET/PREFIX [default: the manifests' [state] table, else local].",
)
global_option(
    "--parallelism",
    type=Parallelism(),
    default="auto",
    show_default=True,
    help="Requests in flight at once: a number, or auto (found from the platform's "
    "answers: more while they succeed quickly, fewer on 429, 503 or a rising latency).",
)
global_option(
    "--max-parallelism",
    type=click.IntRange(1, 256),
    default=128,
    show_default=True,
    help="With --parallelism auto: the most requests in flight at once.",
)
global_option(
    "--attempts",
    type=click.IntRange(1, 20),
    help="Tries per request on timeouts, 408, 429 and 5xx [default: policy, 4].",
)
global_option(
    "--timeout",
    type=Finite(0.1),
    help="Seconds one attempt may take [default: policy, 30].",
)
global_option(
    "--max-rps",
    type=Finite(0.1),
    help="Send at most this many requests per second to each provider.",
)
global_option(
    "--insecure",
    is_flag=True,
    help="Allow plain http:// endpoints on hosts that are not loopback.",
)
global_option("--no-color", is_flag=True, help="Never colour the output.")
global_option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
global_option(
    "--notify",
    "notify",
    multiple=True,
    metavar="URL",
    help="After the run, tell slack://env:VAR, feishu://env:VAR, dingtalk://env:VAR, "
    "wecom://env:VAR or webhook://env:VAR (VAR: the environment variable that holds the "
    "webhook's URL; see the README; repeatable). A failure to notify is a warning.",
)
global_option(
    "--notify-on",
    type=click.Choice(("change", "always", "failure")),
    default="change",
    show_default=True,
    help="When to notify: when there is something to act on (or on a failure), always, or "
    "only on a failure.",
)
global_option(
    "--metrics-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="After the run, write Prometheus text metrics here (node_exporter's textfile collector).",
)

#: The options of `Run`, in the order --help lists them.
RUN_OPTIONS = (
    *("state_dir", "state_url", "parallelism", "max_parallelism", "attempts", "timeout"),
    *("max_rps", "insecure", "no_color", "quiet"),
)
#: The options of `Outward`, on the commands that report outward (plan, apply, drift).
OUTWARD_OPTIONS = ("notify", "notify_on", "metrics_file")


class Command(click.Command):
    """A command whose shared options not given after it take the value given before it, and
    whose --help names the environment variable of each option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, click.Option) and param.name != "help":
                param.show_envvar = True

    def invoke(self, ctx: click.Context) -> Any:
        for name in GLOBAL.keys() & ctx.params.keys():
            if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                continue
            parent = ctx.parent
            while parent is not None:
                if parent.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                    ctx.params[name] = parent.params[name]
                    break
                parent = parent.parent
        return super().invoke(ctx)


class Group(click.Group):
    command_class = Command
    group_class = type


TARGET = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="ADDRESS",
    help="Limit the plan to this address (repeatable): PROVIDER[/MODEL[/VERSION]], a name "
    'holding / " # or spaces in quotes (fab/"a/b"). One that selects nothing is an error.',
)
EXCLUDE = click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="ADDRESS",
    help="Leave this address out of the plan, with what is inside it (repeatable; the inverse "
    "of --target, the same forms). One that names nothing is an error.",
)
PROVIDERS = click.option(
    "--provider",
    "provider_globs",
    multiple=True,
    metavar="GLOB",
    help="List only the providers whose name matches GLOB (repeatable; fnmatch: prod-*, "
    "fab-[ab]). One that matches none is an error.",
)


def common(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options to a command; it receives them as one `run: Run` argument."""

    @functools.wraps(func)
    def command(
        *args: Any,
        state_dir: Path | None,
        state_url: str | None,
        parallelism: int | None,
        max_parallelism: int,
        no_color: bool,
        quiet: bool,
        insecure: bool,
        attempts: int | None,
        timeout: float | None,
        max_rps: float | None,
        **kwargs: Any,
    ) -> Any:
        run = Run(
            state_dir=state_dir,
            state_url=state_url,
            parallelism=parallelism,
            max_parallelism=max_parallelism,
            color=use_color(no_color),
            quiet=quiet,
            insecure=insecure,
            attempts=attempts,
            timeout=timeout,
            max_rps=max_rps,
        )
        return func(*args, run=run, **kwargs)

    declared: Callable[..., Any] = command
    for name in reversed(RUN_OPTIONS):
        declared = shared_option(name)(declared)
    return declared


def reports_outward(command: Reported) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add --notify, --notify-on and --metrics-file; the command receives `outward: Outward`,
    checked before it runs and sent after it, whether it finished or failed."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapped(
            *args: Any,
            notify: tuple[str, ...],
            notify_on: NotifyOn,
            metrics_file: Path | None,
            run: Run,
            **kwargs: Any,
        ) -> Any:
            from reconcile.notify import parse_targets
            from reconcile.outward import Outward

            outward = Outward(
                command,
                targets=parse_targets(notify),
                on=notify_on,
                metrics_file=metrics_file,
                insecure=run.insecure,
                link=ci_link(),
            )
            outward.check()
            code: int = EXIT_BUG
            error: str | None = "an unexpected error"
            try:
                code = func(*args, outward=outward, run=run, **kwargs)
                error = None
                return code
            except ReconcileError as failure:
                code, error = failure.exit_code, str(failure).splitlines()[0]
                raise
            except click.ClickException as failure:
                code, error = EXIT_ERROR, failure.format_message()
                raise
            except (KeyboardInterrupt, click.exceptions.Abort):
                code, error = EXIT_INTERRUPTED, "interrupted"
                raise
            finally:
                for warning in outward.finish(code, error):
                    warn(warning)

        declared: Callable[..., Any] = wrapped
        for name in reversed(OUTWARD_OPTIONS):
            declared = shared_option(name)(declared)
        return declared

    return decorate


def ci_link() -> str | None:
    """The CI job's page, where the run's whole output is, when a known CI says where."""
    env = os.environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_JOB_URL") or None


def with_global_options(group: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in reversed(list(GLOBAL.values())):
        group = decorate(group)
    return group


DEFAULT_MANIFESTS = "manifests"


# -- what the commands share -------------------------------------------------------------------


def load_manifests(path: Path, *, insecure: bool = False) -> Manifest:
    from reconcile.manifest import load_manifest

    return load_manifest(path, insecure=insecure)


def state_dir_for(path: Path, state_dir: Path | None) -> Path:
    from reconcile.wiring import default_state_dir

    return state_dir if state_dir is not None else default_state_dir(path)


PLAN_FORMATS = ("text", "json", "markdown")

#: How plan and show print a plan (--format, its older spelling --json, and --compact).
PLAN_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(PLAN_FORMATS),
    help="text for people (default), json for machines, markdown for a pull-request comment.",
)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
COMPACT = click.option("--compact", is_flag=True, help="Text: one line per object, no reasons.")


def plan_format(fmt: str | None, as_json: bool) -> str:
    """--format, with --json as its older spelling of `--format json`."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json and --format {fmt} disagree: give one of them")
    return "json" if as_json else fmt or "text"
