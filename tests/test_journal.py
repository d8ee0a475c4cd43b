"""The journal survives a crash mid-write, and tells interrupted applies from finished ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.cli import main
from reconcile.journal import ApplyStatus, ApplySummary, Event, last_apply, summarize_applies
from reconcile.state import local
from reconcile.state.local import LocalState
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


def _apply_records(apply_id: str, deletes: int, outcomes: int, finished: bool) -> list[dict]:
    """One apply's records as the applier writes them: started, intents, outcomes, finished."""
    records: list[dict] = [{"event": "apply_started", "apply_id": apply_id, "time": apply_id}]
    for n in range(deletes):
        address = f"p/{apply_id}-{n}"
        records.append(
            {"event": "delete_intent", "apply_id": apply_id, "id": n, "address": address}
        )
        if n < outcomes:
            outcome = {"event": "delete_outcome", "apply_id": apply_id, "id": n}
            records.append({**outcome, "address": address, "outcome": "deleted", "before": {}})
    if finished:
        records.append({"event": "apply_finished", "apply_id": apply_id, "interrupted": False})
    return records


@st.composite
def journals(draw: st.DrawFn) -> list[dict]:
    """Up to four applies, each with or without its start (a torn line), deletes with and
    without outcomes, finished or not, and a record of no apply; interleaved anyhow, each apply's
    records in the order it wrote them."""
    applies = [
        _apply_records(
            f"a{number}", draw(st.integers(0, 3)), draw(st.integers(0, 3)), draw(st.booleans())
        )[1 if draw(st.booleans()) else 0 :]
        for number in range(draw(st.integers(0, 4)))
    ]
    applies.append([{"event": "ledger", "scope": "s"}])
    order = draw(st.permutations([n for n, records in enumerate(applies) for _ in records]))
    queues = [iter(records) for records in applies]
    return [next(queues[number]) for number in order]


@given(journals())
def test_the_last_apply_read_from_the_end_is_the_last_of_all(records: list[dict]) -> None:
    """Read back from the newest record only as far as it must, the last apply is the one a
    reading of the whole journal finds, interleaved with other applies, with or without a start
    (torn), its deletes with or without an outcome, finished or not."""
    applies = summarize_applies(records)
    assert last_apply(reversed(records)) == (applies[-1] if applies else None)


def test_the_last_apply_is_found_without_reading_the_applies_before_it() -> None:
    older = _apply_records("a1", 3, 3, True)
    newer = _apply_records("a2", 2, 1, False)
    read: list[dict] = []

    def newest_first() -> Iterator[dict]:
        for record in reversed([*older, *newer]):
            read.append(record)
            yield record

    last = last_apply(newest_first())
    assert last is not None and last.apply_id == "a2" and last.unfinished == ["p/a2-1"]
    assert read == list(reversed(newer))


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_the_local_journal_reads_back_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Read from its end in blocks (lines cut across them), the journal is its records in the
    reverse order, damaged lines skipped and reported, a torn last line too."""
    monkeypatch.setattr(local, "_TAIL_BLOCK", block)
    records = [
        {"event": "delete_intent", "apply_id": "a1", "id": n, "x": "y" * n} for n in range(9)
    ]
    lines = [json.dumps(record).encode() for record in records]
    lines.insert(3, b"\xff\xfe torn")
    lines.insert(6, b"")
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"\n".join(lines) + b'\n{"event": "apply_fin')
    forward: list[str] = []
    backward: list[str] = []
    store = LocalState(tmp_path)
    assert (
        list(store.records_newest_first(backward.append))
        == list(reversed(list(store.records(forward.append))))
        == list(reversed(records))
    )
    assert len(backward) == len(forward) == 2
    assert all(str(path) in warning and "not a complete record" in warning for warning in backward)


def test_plan_reads_the_journal_back_only_to_the_last_apply(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    """A plan warns of the last apply's deletes without a known outcome, from the records of
    that apply: a damaged line in the history before it is not read (`journal` reads all)."""
    path = _journal(demo)
    path.parent.mkdir(parents=True)
    older = _apply_records("a1", 2, 2, True)
    newer = _apply_records("a2", 2, 1, False)
    lines = [json.dumps(record) for record in older] + ["{torn"] + [json.dumps(r) for r in newer]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["plan", str(demo)]) == 0
    err = capsys.readouterr().err
    assert "apply a2" in err and "1 delete(s) were sent without a known outcome: p/a2-1" in err
    assert "skipped a journal line" not in err
    assert main(["journal", str(demo)]) == 0
    assert f"{path}:{len(older) + 1}: skipped a journal line" in capsys.readouterr().err
