"""The progress line: on a terminal only, not with --quiet, only for steps of a few hundred
objects or more; done/total and the rate; the deletes of an apply and its re-listing report too."""

from __future__ import annotations

import io
from typing import Any

import pytest

from reconcile import console
from reconcile.applier import Applier
from reconcile.model import Snapshot


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(monkeypatch: pytest.MonkeyPatch, *, tty: bool, quiet: bool = False) -> Any:
    stream = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(console.sys, "stderr", stream)
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    return console.ProgressLine(quiet), stream, clock


def test_a_long_step_shows_done_total_and_rate_then_clears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    progress, stream, clock = _progress(monkeypatch, tty=True)
    progress("models listed", 1, 1000)
    clock[0] += 2.0
    progress("models listed", 500, 1000)
    clock[0] += 0.01  # too soon to redraw, unless it is the last one
    progress("models listed", 501, 1000)
    progress("models listed", 1000, 1000)
    progress.clear()
    lines = stream.getvalue().split("\r\x1b[K")
    assert lines[1] == "models listed: 1/1000"
    assert lines[2] == "models listed: 500/1000 (250/s, 2 s left)"
    assert lines[3].startswith("models listed: 1000/1000 (")
    assert lines[-1] == ""  # cleared
    assert len(lines) == 5


def test_each_step_has_its_own_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    progress, stream, clock = _progress(monkeypatch, tty=True)
    progress("models listed", 1000, 1000)
    clock[0] += 10.0
    progress("deleting", 1, 400)
    clock[0] += 1.0
    progress("deleting", 100, 400)
    assert stream.getvalue().endswith("deleting: 100/400 (100/s, 3 s left)")


@pytest.mark.parametrize(("tty", "quiet", "total"), [(False, False, 1000), (True, True, 1000)])
def test_no_line_off_a_terminal_or_with_quiet(
    monkeypatch: pytest.MonkeyPatch, tty: bool, quiet: bool, total: int
) -> None:
    progress, stream, _ = _progress(monkeypatch, tty=tty, quiet=quiet)
    progress("deleting", total, total)
    progress.clear()
    assert stream.getvalue() == ""


def test_no_line_for_a_short_step(monkeypatch: pytest.MonkeyPatch) -> None:
    progress, stream, _ = _progress(monkeypatch, tty=True)
    progress("deleting", 12, 12)
    assert stream.getvalue() == ""


def test_the_applier_reports_its_relisting(tmp_path: Any) -> None:
    seen: list[tuple[str, int, int | None]] = []

    class Listed:
        name = "p"
        type = "fabric"
        model_delete_batch = 1

        async def snapshot(self, progress: Any = None, *, records: bool = True) -> Snapshot:
            if progress is not None:
                progress("models listed", 1, 1)
            return Snapshot(provider="p", provider_type="fabric", location="x", models=())

    import asyncio

    from tests.journal_files import Journal

    class OnePlan:
        def deletes(self) -> list[Any]:
            return [type("C", (), {"provider": "p"})()]

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
