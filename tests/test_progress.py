"""The progress line: on a terminal only, not with --quiet, only for steps of a few hundred
objects or more; done/total and the rate; the deletes of an apply and its re-listing report too."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from reconcile import console
from reconcile.applier import Applier
from reconcile.model import Snapshot


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


class _Shown:
    """A progress display on a fake terminal and clock; `frame()` is what the terminal shows
    after the last redraw (each redraw moves the cursor back over the previous one)."""

    def __init__(self, *, tty: bool = True, quiet: bool = False) -> None:
        self.stream = _Terminal() if tty else io.StringIO()
        self.now = 100.0
        self.progress = console.ProgressLine(
            quiet, stream=self.stream, clock=lambda: self.now, width=100
        )

    def frames(self) -> list[list[str]]:
        # rich hides the cursor, then draws each frame after erasing the previous one.
        raw = self.stream.getvalue().replace("\x1b[?25l", "")
        chunks = re.split(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*", raw)[1:]
        return [[ANSI.sub("", line).rstrip() for line in chunk.split("\n")] for chunk in chunks]

    def frame(self) -> list[str]:
        frames = self.frames()
        return frames[-1] if frames else []


def _row(line: str) -> str:
    """A progress row without its bar: what, done/total, and the rate."""
    return " ".join(re.sub("[━╸╺─]", " ", line).split())


def test_a_long_step_shows_done_total_rate_and_time_left_then_goes() -> None:
    shown = _Shown()
    shown.progress("bench: models listed", 1, 1000)
    assert [_row(line) for line in shown.frame()] == ["bench: models listed 1/1000"]
    shown.now += 2.0
    shown.progress("bench: models listed", 501, 1000)
    assert [_row(line) for line in shown.frame()] == [
        "bench: models listed 501/1000 (250/s, 2 s left)"
    ]
    shown.now += 0.01  # too soon to redraw, unless the step is done
    before = shown.stream.getvalue()
    shown.progress("bench: models listed", 502, 1000)
    assert shown.stream.getvalue() == before
    shown.progress("other: models listed", 0, 400)
    shown.progress("bench: models listed", 1000, 1000)
    # A finished step's line goes; the others stay.
    assert [_row(line) for line in shown.frame()] == ["other: models listed 0/400"]
    shown.progress.clear()
    # Gone from the terminal, the cursor shown again.
    assert shown.stream.getvalue().endswith("\x1b[?25h\r\x1b[1A\x1b[2K")


def test_a_steps_words_are_shown_as_they_are_never_as_markup() -> None:
    shown = _Shown()
    shown.progress("[bold]bench[/bold]: models listed", 1, 1000)
    assert [_row(line) for line in shown.frame()] == ["[bold]bench[/bold]: models listed 1/1000"]


def test_one_line_per_provider_and_phase_each_with_its_own_rate() -> None:
    shown = _Shown()
    shown.progress("alpha: models listed", 0, 1000)
    shown.progress("beta: models listed", 0, 400)
    shown.now += 1.0
    shown.progress("alpha: models listed", 500, 1000)
    shown.progress("beta: models listed", 100, 400)
    shown.now += 0.2
    shown.progress("re-checking alpha: models listed", 1, 1000)
    shown.now += 1.0
    shown.progress("re-checking alpha: models listed", 101, 1000)
    rows = [_row(line) for line in shown.frame()]
    # Each rate counts from its own step's start, at the time of the redraw.
    assert rows == [
        "alpha: models listed 500/1000 (227/s, 2 s left)",
        "beta: models listed 100/400 (45/s, 7 s left)",
        "re-checking alpha: models listed 101/1000 (101/s, 9 s left)",
    ]


@pytest.mark.parametrize(("tty", "quiet"), [(False, False), (True, True)])
def test_no_line_off_a_terminal_or_with_quiet(tty: bool, quiet: bool) -> None:
    shown = _Shown(tty=tty, quiet=quiet)
    shown.progress("deleting", 500, 1000)
    shown.progress("deleting", 1000, 1000)
    shown.progress.clear()
    assert shown.stream.getvalue() == ""


def test_no_line_for_a_short_step() -> None:
    shown = _Shown()
    shown.progress("deleting", 12, 12)
    shown.progress.clear()
    assert shown.stream.getvalue() == ""


def test_a_step_of_unknown_total_that_turns_out_short_goes() -> None:
    """Qianfan knows how many sets there are only once the last page came: the line shows
    while the total is unknown, and goes when the total turns out to be a short step's."""
    shown = _Shown()
    shown.progress("qf: model sets listed", 40, None)
    shown.now += 0.2
    shown.progress("other: models listed", 10, 1000)
    assert [_row(line) for line in shown.frame()] == [
        "qf: model sets listed 40/?",
        "other: models listed 10/1000",
    ]
    shown.progress("qf: model sets listed", 41, 120)
    assert [_row(line) for line in shown.frame()] == ["other: models listed 10/1000"]


def test_rich_loads_only_once_a_long_step_runs() -> None:
    import subprocess
    import sys

    code = (
        "import sys, io\n"
        "from reconcile import console\n"
        "p = console.ProgressLine(False, stream=io.StringIO())\n"
        "p('deleting', 500, 1000)\n"
        "print('rich' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_applier_reports_its_relisting(tmp_path: Any) -> None:
    seen: list[tuple[str, int, int | None]] = []

    class Listed:
        name = "p"
        type = "fabric"
        model_delete_batch = 1

        async def snapshot(self, progress: Any = None, *, records: Any = None) -> Snapshot:
            if progress is not None:
                progress("models listed", 1, 1)
            return Snapshot(provider="p", provider_type="fabric", location="x", models=())

    import asyncio

    from tests.journal_files import Journal

    class OnePlan:
        def deletes(self) -> list[Any]:
            return [type("C", (), {"provider": "p", "before": None})()]

    with Journal(tmp_path / "journal.jsonl") as journal:
        applier = Applier(
            {"p": Listed()},
            journal,
            replan=lambda live: OnePlan(),
            progress=lambda what, done, total: seen.append((what, done, total)),
        )
        asyncio.run(applier.relist(OnePlan()))
    # Its own phase: the rate of the re-checking counts from its own start.
    assert seen == [("re-checking models listed", 1, 1)]
