"""The standard streams of a command whose reader may go away.

`reconcile plan --json | head` closes the pipe after ten lines; the next write to it fails with
a broken pipe (EPIPE: Python ignores SIGPIPE). Raised where it happened, that error ended the
command there, with click's exit code 1 ("error, nothing deleted"), whatever the command had
done: an apply whose summary found its reader gone had deleted everything by then, and one
whose progress lines (stderr) found theirs gone stopped between two batches of deletes.

Inside `readers_may_leave`, `sys.stdout` and `sys.stderr` are `Outlet`s: a write that finds the
reader gone marks the stream `gone` and points its file descriptor at the null device, so that
nothing written after (by click, the log's handler, the progress display, the interpreter's
last flush) fails again. The command goes on as it would have, and exits with the code its work
earned; what it had to say is lost, as its reader chose. An apply that needs its plan seen
(interactive approval) asks `stdout_gone` first. Standard error (progress, warnings, the log)
is let go on any failure to write, a full disk too; standard output's other failures are the
command's to report (`reconcile plan > /dev/full` is an error).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Literal, TextIO


class Outlet:
    """A text stream (`sys.stdout`, `sys.stderr`) whose reader may go away; everything but
    writing is the stream's own. With `diagnostics`, any failure to write (a full disk, an
    I/O error) counts as the reader gone: progress and warnings that cannot be written must
    not stop the work they describe (an apply's delete lines on a full disk stopped it between
    two deletes), and there is nowhere left to say so."""

    def __init__(self, stream: TextIO, *, diagnostics: bool = False) -> None:
        self.stream = stream
        self.diagnostics = diagnostics
        #: The reader went away: what is written since goes nowhere.
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except OSError as error:
                self._failed(error)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        if not (isinstance(error, BrokenPipeError) or self.diagnostics):
            raise error  # the command's own output: the command fails, saying why
        self._leave()

    def _leave(self) -> None:
        self.gone = True
        # What the stream still holds, and whatever else writes to its descriptor, goes to
        # the null device: the interpreter's own flush at exit would fail again otherwise.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            descriptor = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, descriptor)
            finally:
                os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def readers_may_leave() -> Iterator[None]:
    """`sys.stdout` and `sys.stderr` as `Outlet`s while a command runs (see the module), after
    `descriptors_held`; a standard stream the process lacks is the null device."""
    descriptors_held()
    given, out, err = sys.stdin, sys.stdout, sys.stderr
    # A stream the process was started without is None in Python: it is the null device now
    # held on its descriptor, as after `</dev/null` or `>/dev/null` (no terminal to ask on).
    if given is None:
        sys.stdin = _null_stream(0, "r")
    sys.stdout = Outlet(out if out is not None else _null_stream(1, "w"))
    sys.stderr = Outlet(err if err is not None else _null_stream(2, "w"), diagnostics=True)
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = given, out, err


def descriptors_held() -> None:
    """The null device on each of the descriptors 0-2 the process was started without
    (`reconcile plan >&-`). Left free, the first socket opened took the number: output meant
    for the terminal would have gone into it, and the event loop's libuv aborted the process
    (SIGABRT) when it closed a descriptor below 3."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)


def _null_stream(descriptor: int, mode: Literal["r", "w"]) -> TextIO:
    """A text stream on `descriptor` (the null device there), left open for the command."""
    return open(descriptor, mode, encoding="utf-8", closefd=False)


def stdout_gone() -> bool:
    """Whether the reader of standard output went away (inside `readers_may_leave`)."""
    return isinstance(sys.stdout, Outlet) and sys.stdout.gone
