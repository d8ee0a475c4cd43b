"""The progress display's rich parts, apart from `console.ProgressLine`: imported only once a
long step runs, so that rich never loads for `--help` or a short command."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    """`(250/s, 2 s left)`: the step's rate from its own start, and the time left at that rate;
    nothing in the step's first half second, when a rate would say nothing."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if elapsed is None or elapsed < 0.5 or not task.completed:
            return Text("")
        speed = task.completed / elapsed
        left = ""
        if task.total is not None and task.completed < task.total:
            left = f", {(task.total - task.completed) / speed:.0f} s left"
        return Text(f"({speed:.0f}/s{left})")


def display(
    stream: TextIO, clock: Callable[[], float], width: int | None, *, colour: bool
) -> Progress:
    """A line per step: what, a bar, done/total, rate and time left. Redrawn when the caller
    says (no refresh thread), and gone from the terminal when stopped."""
    return Progress(
        TextColumn("{task.description}", markup=False),  # a step's words, never markup
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        RateColumn(),
        console=Console(file=stream, force_terminal=True, no_color=not colour, width=width),
        auto_refresh=False,
        transient=True,
        get_time=clock,
    )
