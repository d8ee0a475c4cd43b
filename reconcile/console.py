"""The terminal side of the edge: what a command shows and asks while it runs, apart from the
click declarations of `cli/`.

The progress line, colour by the no-color.org rules, warnings and errors on stderr, the approval
prompt, the event loop a command runs on with its signal handling, and the `ApplyIO` that
`session.apply_plan` is given (show, ask, run, report each delete). Platform text reaches the
terminal only through `printable` or the renderers.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from reconcile.errors import ApprovalError
from reconcile.heap import collector_paused as collector_paused
from reconcile.streams import stdout_gone

if TYPE_CHECKING:  # the heavy modules load only when a command runs, so --help stays fast
    from asyncio import AbstractEventLoop

    from reconcile.applier import Outcome
    from reconcile.manifest import Manifest
    from reconcile.plan import Change, Plan

T = TypeVar("T")


def use_color(no_color: bool) -> bool:
    from reconcile.colour import stream_wants_colour

    return stream_wants_colour(sys.stdout, no_color)


class ProgressLine:
    """A line per running step on stderr (a provider's listing, apply's re-checking of one,
    deleting): objects done, of how many, the rate from the step's own start and the time
    left, drawn by rich's progress display. Only on a terminal, not with --quiet, and only for
    steps of more than a few hundred objects (a short step is over before a line would help).
    A finished step's line goes at once; `clear` removes the display before other output.

    Redrawn by the caller's updates (at most every `INTERVAL`), not by rich's refresh thread:
    the steps report from one event loop, and a thread would only redraw what has not moved."""

    #: Steps of fewer objects than this show no line.
    MIN_TOTAL = 300
    #: Seconds between redraws.
    INTERVAL = 0.1

    def __init__(
        self,
        quiet: bool,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] | None = None,
        width: int | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.enabled = not quiet and self.stream.isatty()
        self.clock = clock or time.monotonic
        self.width = width
        self.last = -math.inf
        #: rich's display, made at the first long step (rich loads only then).
        self._display: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total is not None and total < self.MIN_TOTAL:
            # A short step; or one shown while its total was unknown (Qianfan's pages), which
            # turned out short: its line goes.
            if what in self._tasks and self._display is not None:
                self._display.update(self._tasks[what], visible=False)
                self._display.refresh()
            return
        display = self._display or self._start()
        task = self._tasks.get(what)
        if task is None:
            task = self._tasks[what] = display.add_task(what, total=total)
        display.update(task, completed=done, total=total, visible=done != total)
        now = self.clock()
        if now - self.last >= self.INTERVAL or done == total:
            self.last = now
            display.refresh()

    def _start(self) -> Any:
        from reconcile.colour import stream_wants_colour
        from reconcile.progress_display import display

        colour = stream_wants_colour(self.stream, no_color_flag=False)
        self._display = display(self.stream, self.clock, self.width, colour=colour)
        self._display.start()
        return self._display

    def clear(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None
            self._tasks = {}


class _Signals:
    """SIGINT and SIGTERM while a command's event loop runs: the innermost handler decides.

    `run_command` installs the outermost one, which cancels the command at once (a listing
    stops, the command exits 130 having deleted nothing); an apply's deletes install their own
    for the time they run (`on_signals`). Without this, a signal during a listing was noticed
    only once the listing ended (SIGINT) or killed the process without cleanup (SIGTERM).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.handlers: list[Callable[[], None]] = []

    def notify(self) -> None:
        if self.handlers:
            self.handlers[-1]()

    @contextlib.contextmanager
    def handling(self, handler: Callable[[], None]) -> Iterator[None]:
        self.handlers.append(handler)
        try:
            yield
        finally:
            self.handlers.remove(handler)

    @contextlib.contextmanager
    def installed(self, loop: Any) -> Iterator[None]:
        """The loop calls `notify` on each signal, for the duration of the block."""
        installed = []
        for sig in self.SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.notify)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


_SIGNALS = _Signals()


def _event_loop() -> Callable[[], AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency everywhere but on Windows), else
    asyncio's own: its loop, timers and sockets are C, and a request costs a tenth less CPU
    (10,000 listing requests on loopback, alternating runs: 263-278 us against 296-306)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_command(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end; a signal that reaches no inner handler cancels it, and it
    ends as KeyboardInterrupt (exit 130)."""
    import asyncio  # here, not at the top: it is a third of `reconcile --help`'s start-up

    result: list[T] = []
    interrupted: list[bool] = []

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None

        def cancel() -> None:
            interrupted.append(True)
            task.cancel()

        with _SIGNALS.installed(asyncio.get_running_loop()), _SIGNALS.handling(cancel):
            # The main task returns nothing: on the way out the runner's SIGINT bookkeeping
            # reprs the task (signal.getsignal formats a ValueError), result included, and the
            # repr of a 100k-version plan or snapshot costs seconds.
            result.append(await coroutine)

    # Listing builds a record per live object too: paused, the collector's passes over the
    # growing heap cost nothing (they were 7 of 15 CPU seconds of a 100k-version plan).
    with collector_paused():
        try:
            with asyncio.Runner(loop_factory=_event_loop()) as runner:
                runner.run(main())
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
    return result[0]


class TerminalApplyIO:
    """The terminal side of `session.apply_plan`: show, ask, run, report progress, signals."""

    def __init__(
        self, color: bool, progress: ProgressLine, auto_approve: bool, manifest: Manifest
    ) -> None:
        self.color = color
        self.progress = progress
        self.auto_approve = auto_approve
        self.manifest = manifest
        self.done = 0
        self.total = 0
        #: No progress line (a CI log, not --quiet): a line per delete instead.
        self.log_lines = not progress.enabled and not progress.quiet

    def show(self, plan: Plan) -> None:
        self.total = len(plan.deletes())
        from reconcile.render.formats import plan_as

        click.echo(plan_as(plan, "text", color=self.color), nl=False)

    def approve(self, plan: Plan) -> None:
        confirm(plan, self.manifest, self.auto_approve)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            return run_command(work)
        finally:
            self.progress.clear()

    def interrupts(self, handler: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
        return on_signals(handler)

    def begin(self, apply_id: str, deletes: int) -> None:
        click.echo(
            f"Apply {apply_id}: sending {deletes} delete(s); "
            f"`reconcile journal --apply-id {apply_id}` shows their receipts."
        )

    def on_event(self, kind: str, change: Change | None, outcome: Outcome | None) -> None:
        """Failures as they are known: refusals at once, the rest once verified. In a log (no
        progress line), one line per delete as its outcome comes."""
        from reconcile.model import printable

        if outcome is None:
            return
        if kind == "done":
            self.done += 1
        address = printable(outcome.change.address)
        shown = "failed" if kind == "done" else ("failed", "unknown")
        if outcome.status in shown:
            self.progress.clear()
            said = printable(str(outcome.error))
            click.echo(f"  {outcome.status}: {address}: {said}", err=True)
        elif kind == "done" and self.log_lines:
            click.echo(f"  {outcome.status}: {address} ({self.done}/{self.total})", err=True)
        if kind == "done":
            self.progress("deleting", self.done, self.total)


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def echo_error(message: str) -> None:
    """`Error: MESSAGE` on stderr, the word in red on a terminal (by the same rules as output)."""
    from reconcile.colour import stream_wants_colour

    label = "Error:"
    if stream_wants_colour(sys.stderr, no_color_flag=False):
        label = "\x1b[31;1mError:\x1b[0m"
    click.echo(f"{label} {message}", err=True, color=True if label != "Error:" else None)


def confirm(the_plan: Plan, manifest: Manifest, auto_approve: bool) -> None:
    """Interactive approval: the literal `yes`; above a provider's `confirm_name_above` deletes,
    the name of the workspace instead, so a large delete is never approved by reflex."""
    from reconcile.guards import names_to_confirm

    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise ApprovalError(
            "refusing to apply without confirmation: no terminal to ask on",
            hint="review the plan and pass --auto-approve, or apply a saved plan file",
        )
    if stdout_gone():
        raise ApprovalError(
            "refusing to apply: the plan could not be shown (its reader closed standard "
            "output); nothing was deleted",
            hint="run again with standard output to a terminal, or save the plan with "
            "`reconcile plan -o FILE`, review it, and apply the file",
        )
    large = names_to_confirm(the_plan, manifest)
    click.echo(
        f"\nDo you want to delete these {len(the_plan.deletes())} objects?\n"
        "  reconcile will delete exactly the objects listed above. This cannot be undone."
    )
    if not large:
        click.echo("  Only 'yes' will be accepted to approve.\n")
        answer = click.prompt("  Enter a value", default="", show_default=False)
        if answer.strip() != "yes":
            raise ApprovalError("apply cancelled: nothing was deleted")
        return
    for provider, (count, name) in large.items():
        click.echo(
            f"  {count} deletes in {provider}: type the name of the workspace, {name}, "
            "to approve.\n"
        )
        answer = click.prompt("  Enter a value", default="", show_default=False)
        if answer.strip() != name:
            raise ApprovalError(
                f"apply cancelled: {answer.strip()!r} is not {name}; nothing was deleted"
            )


@contextlib.contextmanager
def on_signals(handler: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM during an apply: no new delete is sent, a listing stops at once, deletes
    in flight finish and are journaled (a second signal stops waiting for them)."""

    def notify() -> None:
        click.echo(
            "\nInterrupted: sending no new deletes, waiting for those in flight "
            "(interrupt again to stop waiting).",
            err=True,
        )
        handler()

    with _SIGNALS.handling(notify):
        yield
