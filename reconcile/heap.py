"""A command's heap: the cyclic garbage collector paused around its allocation-heavy steps (the
listing, `console.run_command`, and the planning, `planning.make_plan`), and what it made left
for the operating system to take back when the process exits (`outlive_command`, `exit_now`)."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from typing import NoReturn


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector around a pure, allocation-heavy step.

    Planning a large workspace allocates a record per live object and frees almost nothing, so
    the collector's full passes over the whole heap would come again and again (at 100k versions
    they doubled the time); the records hold no reference cycles, so nothing is lost by waiting.
    What the step made lives until the command ends: frozen, the collector never walks it again
    either (rendering the plan after it would otherwise start a full pass, 0.5 s at 100k).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()  # `cli.main` unfreezes on the way out, for callers that go on (tests)
    finally:
        if enabled:
            gc.enable()


#: What the running command made that lives until it ends (see `outlive_command`).
_outliving: list[object] = []


def outlive_command(*made: object) -> None:
    """Keep what a command made (its listing, its plan) until the command ends, not only until
    its function returns. A large plan's million objects took 0.4 s to free one by one as the
    function returned and the interpreter shut down: the `reconcile` process (`exit_now`) ends
    without freeing them, and a caller that goes on (tests) frees them with `release`."""
    _outliving.extend(made)


def release() -> None:
    """Free what commands kept (`outlive_command`): the command is over, the process goes on."""
    _outliving.clear()


def exit_now(code: int) -> NoReturn:
    """End the process with `code` once its output is written, freeing nothing: the operating
    system takes the whole heap back at once (mypy's "fast exit" does the same). Every file a
    command writes is closed by then, and the log's handler removed; only the standard streams
    may still hold output. Should they refuse it (a closed pipe), Python's own exit says so."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: the process was started without it
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)
