"""`--metrics-file` (reconcile/metrics.py), read back with prometheus_client's own parser."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconcile.errors import ReconcileError
from reconcile.events import RunEvent
from reconcile.files import write_atomically
from reconcile.metrics import (
    check_metrics_path,
    previous_success,
    render_metrics,
    write_metrics_file,
)

START = 1_717_236_000.0


def _event(exit_code: int = 2, command: str = "drift", finished: float = START + 12.5) -> RunEvent:
    return RunEvent(
        command=command,  # type: ignore[arg-type]
        counts={
            "fabric-prod": {"delete": 515, "blocked": 3, "drift": 2},
            'qian"fan\\cn\nnorth': {"kept": 4},
        },
        exit_code=exit_code,
        summary="Plan: 515 to delete, 3 blocked, 2 drifted.",
        changed=True,
        started_at=START,
        finished_at=finished,
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the file as {(name, sorted labels): value}, through the real parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        assert family.documentation, family.name
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _objects(provider: str, category: str, command: str = "drift") -> tuple[str, tuple]:
    labels = (("category", category), ("command", command), ("provider", provider))
    return ("reconcile_objects", labels)


def test_objects_per_provider_and_category_zeros_included() -> None:
    samples = _samples(render_metrics(_event()))
    assert samples[_objects("fabric-prod", "delete")] == 515
    assert samples[_objects("fabric-prod", "blocked")] == 3
    assert samples[_objects("fabric-prod", "drift")] == 2
    assert samples[_objects("fabric-prod", "kept")] == 0
    # a provider name with a quote, a backslash and a newline survives the round trip
    assert samples[_objects('qian"fan\\cn\nnorth', "kept")] == 4
    assert samples[_objects('qian"fan\\cn\nnorth', "delete")] == 0
    # plan and drift have no apply categories
    assert _objects("fabric-prod", "deleted") not in samples


def test_apply_counts_deleted_and_failed() -> None:
    event = RunEvent(
        command="apply",
        counts={"fabric-prod": {"deleted": 510, "failed": 5}},
        exit_code=3,
        summary="Apply: 510 deleted, 5 failed.",
        changed=True,
        started_at=START,
        finished_at=START + 60,
    )
    samples = _samples(render_metrics(event))
    assert samples[_objects("fabric-prod", "deleted", "apply")] == 510
    assert samples[_objects("fabric-prod", "failed", "apply")] == 5
    assert samples[_objects("fabric-prod", "delete", "apply")] == 0


def test_run_gauges_carry_time_duration_and_exit_code() -> None:
    samples = _samples(render_metrics(_event()))
    command = (("command", "drift"),)
    assert samples[("reconcile_last_run_timestamp_seconds", command)] == START + 12.5
    assert samples[("reconcile_last_success_timestamp_seconds", command)] == START + 12.5
    assert samples[("reconcile_run_duration_seconds", command)] == 12.5
    assert samples[("reconcile_exit_code", command)] == 2
    assert samples[("reconcile_last_run_success", command)] == 1


def test_a_failed_run_has_no_success_time_unless_one_is_carried_forward() -> None:
    command = (("command", "drift"),)
    samples = _samples(render_metrics(_event(exit_code=1)))
    assert ("reconcile_last_success_timestamp_seconds", command) not in samples
    assert samples[("reconcile_last_run_success", command)] == 0
    assert samples[("reconcile_exit_code", command)] == 1
    samples = _samples(render_metrics(_event(exit_code=1), previous_success=START - 3600))
    assert samples[("reconcile_last_success_timestamp_seconds", command)] == START - 3600


def test_the_file_is_written_and_a_failed_run_keeps_the_last_success(tmp_path: Path) -> None:
    path = tmp_path / "reconcile_drift.prom"
    assert write_metrics_file(path, _event(exit_code=0, finished=START + 10)) is None
    assert write_metrics_file(path, _event(exit_code=1, finished=START + 999)) is None
    samples = _samples(path.read_text(encoding="utf-8"))
    command = (("command", "drift"),)
    assert samples[("reconcile_last_success_timestamp_seconds", command)] == START + 10
    assert samples[("reconcile_last_run_timestamp_seconds", command)] == START + 999
    assert samples[("reconcile_exit_code", command)] == 1
    # readable by node_exporter's user, and nothing left beside it
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["reconcile_drift.prom"]


def test_previous_success_reads_only_its_own_command() -> None:
    text = render_metrics(_event(command="apply", exit_code=0, finished=START + 5))
    assert previous_success(text, "apply") == START + 5
    assert previous_success(text, "drift") is None
    assert previous_success("garbage\n", "apply") is None


def test_the_file_is_replaced_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename is the only step that touches the file: a crash before it leaves the old file
    whole and no temporary behind."""
    path = tmp_path / "m.prom"
    path.write_text("# old\n", encoding="utf-8")
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        renamed.append((src, dst))
        # at the moment of the rename the temporary is complete and in the same directory
        assert Path(src).parent == path.parent
        assert Path(src).name.startswith(".m.prom.")
        assert not Path(src).name.endswith(".prom")  # the collector skips it
        assert Path(src).read_text(encoding="utf-8") == "# new\n"
        assert path.read_text(encoding="utf-8") == "# old\n"
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_atomically(path, "# new\n")
    assert len(renamed) == 1
    assert path.read_text(encoding="utf-8") == "# new\n"

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_atomically(path, "# newer\n")
    assert path.read_text(encoding="utf-8") == "# new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.prom"]


def test_a_file_that_cannot_be_written_is_a_warning(tmp_path: Path) -> None:
    warning = write_metrics_file(tmp_path / "missing" / "m.prom", _event())
    assert warning is not None
    assert "missing" in warning
    assert "not written" in warning


def test_check_metrics_path_refuses_before_a_run(tmp_path: Path) -> None:
    check_metrics_path(tmp_path / "m.prom")
    with pytest.raises(ReconcileError, match="is not a directory"):
        check_metrics_path(tmp_path / "missing" / "m.prom")
    with pytest.raises(ReconcileError, match="is a directory"):
        check_metrics_path(tmp_path)


def test_an_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown categories"):
        RunEvent(
            command="plan",
            counts={"p": {"deletes": 1}},
            exit_code=0,
            summary="",
            changed=False,
            started_at=0,
            finished_at=0,
        )
