"""What only one kind of store does: the object store's probe and failures, the local store's
reading of what earlier versions wrote, and choosing a store from the `[state]` table."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from reconcile.errors import LockError, ReconcileError
from reconcile.state import (
    StateError,
    StateSpec,
    open_state,
    parse_state_url,
    split_object_url,
)
from reconcile.state.base import S3Location
from reconcile.state.s3 import IGNORES_IF_NONE_MATCH
from tests.s3_fixtures import KEYS, SECRET, make_bucket, s3_spec

# -- the object store ---------------------------------------------------------------------------


def test_the_probe_passes_on_moto(moto_endpoint: str) -> None:
    with open_state(
        s3_spec(moto_endpoint, make_bucket(moto_endpoint)), default_dir=Path(), environ=KEYS
    ) as state:
        result = state.probe()
        print(f"\nprobe on moto: {result}")
        assert "refused (412)" in result
        assert state.probe() == result


def test_a_store_that_ignores_if_none_match_is_refused_at_the_probe(
    moto_endpoint: str, ignoring_proxy: str
) -> None:
    bucket = make_bucket(moto_endpoint)
    spec = s3_spec(ignoring_proxy, bucket)
    with open_state(spec, default_dir=Path(), environ=KEYS) as state:
        with pytest.raises(StateError) as refused:
            state.acquire("fabric:ws-1", "apply")
        message = str(refused.value)
        assert IGNORES_IF_NONE_MATCH in message
        assert f"s3://{bucket}/team/prod/ at {ignoring_proxy}" in message
        # No lock, no journal record was written through it: the probe comes first.
        with pytest.raises(StateError, match="a lock on it is no lock"):
            state.append({"event": "apply_started", "apply_id": "a1"})
    with open_state(s3_spec(moto_endpoint, bucket), default_dir=Path(), environ=KEYS) as real:
        assert real.read_lock("fabric:ws-1") is None
        assert list(real.records()) == []
        assert real.locks() == []


def test_a_store_that_stops_answering_fails_the_append(moto_endpoint: str) -> None:
    """The applier sends no delete whose intent did not reach the store: the append raises."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    spec = s3_spec(f"http://127.0.0.1:{port}", "some-bucket")
    state = open_state(spec, default_dir=Path(), environ=KEYS)
    with state, pytest.raises(StateError) as failed:
        state.append({"event": "delete_intent", "apply_id": "a1", "id": "m1"})
    message = str(failed.value)
    assert f"s3://some-bucket/team/prod/ at http://127.0.0.1:{port}" in message
    assert "probe conditional writes: no answer from the store" in message
    assert SECRET not in message and "Traceback" not in message


def test_a_missing_bucket_is_named_with_the_fix(moto_endpoint: str) -> None:
    with (
        open_state(s3_spec(moto_endpoint, "no-such-bucket"), default_dir=Path(), environ=KEYS) as s,
        pytest.raises(StateError) as failed,
    ):
        s.put_plan("plan.json", b"{}")
    assert "NoSuchBucket (HTTP 404)" in str(failed.value)
    assert "create the bucket no-such-bucket" in str(failed.value)


def test_missing_keys_are_named_never_shown() -> None:
    spec = StateSpec(url="s3://team-state/prod", ak_env="TEAM_AK", sk_env="TEAM_SK")
    with pytest.raises(StateError) as failed:
        open_state(spec, default_dir=Path(), environ={"TEAM_AK": "AKVALUE"})
    assert "TEAM_SK" in str(failed.value)
    assert "AKVALUE" not in str(failed.value)
    with pytest.raises(StateError, match="go together"):
        open_state(StateSpec(url="s3://team-state/p", ak_env="A"), default_dir=Path(), environ={})


# -- the local store reads what earlier versions wrote -------------------------------------------


def test_a_lock_of_an_earlier_version_blocks_every_scope_until_released_by_id(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / ".reconcile"
    state_dir.mkdir()
    lock_id = "earlier00000"
    earlier = {"id": lock_id, "operation": "apply", "who": f"u@{socket.gethostname()}"}
    (state_dir / "lock").write_text(json.dumps({**earlier, "pid": os.getpid(), "since": "x"}))
    with open_state(StateSpec(), default_dir=state_dir, environ={}) as state:
        with pytest.raises(LockError) as refused:
            state.acquire("fabric:ws-1", "apply")
        assert lock_id in str(refused.value)
        assert [info.id for info in state.locks()] == [lock_id]
        with pytest.raises(LockError, match="is live"):
            state.force_unlock("fabric:ws-1", lock_id)
        (state_dir / "lock").write_text(
            json.dumps({"id": "abc", "operation": "apply", "who": "u@h", "pid": 1, "since": "x"})
        )
        state.force_unlock("fabric:ws-1", "abc", force=True)
        with state.acquire("fabric:ws-1", "apply"):
            pass


def test_an_append_after_a_torn_line_starts_on_a_fresh_line(tmp_path: Path) -> None:
    state_dir = tmp_path / ".reconcile"
    state_dir.mkdir()
    (state_dir / "journal.jsonl").write_text('{"event": "a", "apply_id": "1"}\n{"event": "dele')
    with open_state(StateSpec(), default_dir=state_dir, environ={}) as state:
        state.append({"event": "b", "apply_id": "2"})
        assert [r["event"] for r in state.records()] == ["a", "b"]
    lines = (state_dir / "journal.jsonl").read_text().splitlines()
    assert lines[1] == '{"event": "dele'


def test_a_dead_local_holder_is_reported_stale(tmp_path: Path) -> None:
    state_dir = tmp_path / ".reconcile"
    (state_dir / "locks").mkdir(parents=True)
    (state_dir / "locks" / "fabric%3Aws-1.json").write_text(
        json.dumps(
            {
                "id": "dead01",
                "operation": "apply",
                "holder": "u",
                "host": socket.gethostname(),
                "pid": 2**22 + 7,
                "lease_seconds": 600,
            }
        )
    )
    with open_state(StateSpec(), default_dir=state_dir, environ={}) as state:
        with pytest.raises(LockError, match="no longer running"):
            state.acquire("fabric:ws-1", "apply")
        state.force_unlock("fabric:ws-1", "dead01")


# -- choosing a store ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://team-state/prod/fabric/", S3Location("team-state", "prod/fabric/")),
        ("s3://team-state", S3Location("team-state", "")),
        ("S3://team-state//a//b", S3Location("team-state", "a/b/")),
    ],
)
def test_object_store_urls(url: str, expected: S3Location) -> None:
    assert parse_state_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket/x", "unknown scheme 'gs'"),
        ("s3://Bad_Bucket/x", "not a bucket name"),
        ("s3://bucket/../x", "may not contain"),
    ],
)
def test_bad_state_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ReconcileError, match=message):
        parse_state_url(url)


def test_a_plan_url_names_its_store_and_key() -> None:
    assert split_object_url("s3://team-state/prod/plan.json") == (
        "s3://team-state/prod",
        "plan.json",
    )
    with pytest.raises(StateError, match="names no object"):
        split_object_url("s3://team-state")


def test_an_endpoint_with_credentials_is_refused_without_showing_them() -> None:
    spec = StateSpec(url="s3://team-state/p", endpoint=f"https://ak:{SECRET}@obs.example.com")
    with pytest.raises(StateError) as refused:
        open_state(
            spec,
            default_dir=Path(),
            environ={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        )
    assert SECRET not in str(refused.value)
    assert "environment variables" in str(refused.value)


def test_local_is_the_state_dir_and_a_path_is_a_folder(tmp_path: Path) -> None:
    from reconcile.state.local import LocalState

    default = open_state(StateSpec(), default_dir=tmp_path / ".reconcile", environ={})
    assert isinstance(default, LocalState) and default.root == tmp_path / ".reconcile"
    other = open_state(StateSpec(url=str(tmp_path / "x")), default_dir=tmp_path, environ={})
    assert isinstance(other, LocalState) and other.root == tmp_path / "x"
