"""The journal survives a crash mid-write, and tells interrupted applies from finished ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconcile.cli import main
from reconcile.journal import ApplyStatus, ApplySummary, Event, summarize_applies
from tests.journal_files import Journal, read_journal


def _journal(demo: Path) -> Path:
    return demo / ".reconcile" / "journal.jsonl"


def test_an_apply_after_a_torn_last_line_journals_its_first_record_whole(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    path = _journal(demo)
    path.parent.mkdir(parents=True)
    path.write_text('{"time": "2024-01-01T00:00:00", "event": "delete_int', encoding="utf-8")
    assert main(["apply", str(demo), "--auto-approve"]) == 0
    capsys.readouterr()
    warnings: list[str] = []
    records = list(read_journal(path, warnings.append))
    assert records[0]["event"] == "apply_started"
    assert warnings == [
        f"{path}:1: skipped a journal line that is not a complete record (torn by a crash?)"
    ]
    (summary,) = summarize_applies(records)
    assert summary.status is ApplyStatus.FINISHED and len(summary.deleted) == 11


def test_readers_skip_and_report_a_damaged_line(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    path = _journal(demo)
    path.parent.mkdir(parents=True)
    good = {"time": "t", "event": "apply_started", "apply_id": "a1", "plan_digest": "d"}
    path.write_bytes(
        json.dumps(good).encode() + b"\n\xff\xfe torn\n[1, 2]\n" + b'{"event": "apply_fin'
    )
    assert main(["journal", str(demo)]) == 0
    out, err = capsys.readouterr()
    assert "a1" in out
    for line in (2, 3, 4):
        assert f"{path}:{line}: skipped a journal line" in err


def test_every_append_starts_on_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text('{"event": "apply_sta', encoding="utf-8")
    with Journal(path) as journal:
        journal.write(Event.APPLY_STARTED, apply_id="b2")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"event": "apply_sta'
    assert json.loads(lines[1])["apply_id"] == "b2"


def _interrupted_apply(path: Path) -> None:
    with Journal(path) as journal:
        journal.write(Event.APPLY_STARTED, apply_id="c3", plan_digest="d", deletes=3)
        for name in ("a", "b", "c"):
            journal.write(Event.DELETE_INTENT, apply_id="c3", address=f"p/{name}", id=name)
        journal.write(Event.DELETE_OUTCOME, apply_id="c3", address="p/a", id="a", outcome="deleted")
        journal.write(
            Event.DELETE_OUTCOME,
            apply_id="c3",
            address="p/b",
            id="b",
            outcome="unknown",
            error="interrupted before the platform answered",
        )
        journal.write(
            Event.APPLY_FINISHED,
            apply_id="c3",
            deleted=1,
            failed=0,
            unknown=1,
            not_attempted=1,
            interrupted=True,
        )


def test_an_interrupted_apply_is_listed_as_interrupted_with_its_unknown_outcomes(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    _interrupted_apply(_journal(demo))
    assert main(["journal", str(demo)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("1 deleted, 0 failed, 1 unknown, 1 unfinished  interrupted")
    assert "without a known outcome (check them with plan): p/b, p/c" in out
    assert main(["journal", str(demo), "--apply-id", "c3"]) == 0
    out = capsys.readouterr().out
    assert "  unknown: p/b" in out and "  deleted: p/a" in out


def test_the_next_plan_warns_of_an_interrupted_applys_unknown_outcomes(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    _interrupted_apply(_journal(demo))
    assert main(["plan", str(demo)]) == 0
    err = capsys.readouterr().err
    assert "apply c3" in err and "interrupted" in err and "p/b" in err


def test_summaries_are_typed_records(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _interrupted_apply(path)
    (summary,) = summarize_applies(read_journal(path))
    assert summary == ApplySummary(
        apply_id="c3",
        started=summary.started,
        plan_digest="d",
        status=ApplyStatus.INTERRUPTED,
        deleted=["p/a"],
        failed=[],
        unknown=["p/b"],
        unfinished=["p/c"],
    )
    assert summary.open == ["p/b", "p/c"]


@pytest.mark.parametrize(
    "record",
    [
        {"event": "delete_intent", "record": {"id": "m1", "versions": [{"n": 1.5, "ok": True}]}},
        {"name": "modèle \u202e 模型", "size": 2**70, "at": "2026-11-29T06:00:00Z"},
        {"lone": "\ud800", "none": None},
        {
            "when": __import__("datetime").datetime(
                2026, 11, 29, 6, 0, tzinfo=__import__("datetime").UTC
            )
        },
    ],
    ids=["nested", "unicode-and-a-long-integer", "lone-surrogate", "a-time"],
)
def test_a_journal_record_is_written_as_the_standard_encoder_would_read_it(
    record: dict[str, object],
) -> None:
    """Records are encoded by orjson where it can, by the standard encoder where it cannot:
    either way a record reads back as the standard encoder wrote it before."""
    from reconcile.state.base import decode_record, encode_record

    line = encode_record(record)
    assert b"\n" not in line
    assert decode_record(line) == json.loads(json.dumps(record, ensure_ascii=False, default=str))
