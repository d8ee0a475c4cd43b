"""What an apply reports is what happened: an answer that does not settle a delete (not found,
a 5xx, a lost answer, an authentication error dressed as not found) is verified by listing once
more after the deletes, and the report and the journal say what the listing showed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from reconcile.applier import Applier, ApplyResult, Status
from reconcile.errors import ListingIncompleteError, NotFoundError, ProviderError, ReconcileError
from reconcile.manifest import Manifest, load_manifest
from reconcile.model import LiveModel, LiveVersion, MakeRecord, RawRecord, Snapshot
from reconcile.plan import Plan
from reconcile.planner import build_plan
from reconcile.providers.base import Progress
from tests.journal_files import Journal, read_journal

PROVIDER = "fab"
#: The Baidu gateway's answer to an unknown or revoked access key (API.md, Qianfan errors).
CREDENTIAL_NOT_FOUND = "NotFound, cause: Could not find credential."


def _manifest(tmp_path: Path) -> Manifest:
    path = tmp_path / "m.toml"
    path.write_text(
        f"""
[providers.{PROVIDER}]
type = "fabric"
endpoint = "https://fabric.example.com"
workspace_id = "ws"
scope = "workspace"
credentials = {{ token_env = "UNUSED_TOKEN" }}

[policy]
keep_latest = 0

[[models]]
provider = "{PROVIDER}"
name = "keep"
"""
    )
    return load_manifest(path)


def _model(name: str) -> LiveModel:
    version = LiveVersion(
        id=f"{name}-v1", name="v1", model_id=name, raw=RawRecord.of({"id": f"{name}-v1"})
    )
    return LiveModel(
        id=name, name=name, versions=(version,), raw=RawRecord.of({"id": name, "name": name})
    )


class Platform:
    """A provider whose deletes answer as told, and whose listing shows what really happened.

    `answers[id]`: "ok" (deleted), "lost" (deleted, answered 500: a retry after a lost answer),
    "gone" (was not there: not found), "credential" (not deleted, answered not found for the
    credential), "refused" (not deleted, 409), "error" (not deleted, answered 500).
    """

    name = PROVIDER
    type = "fabric"
    model_delete_batch = 1

    def __init__(self, names: Sequence[str], answers: Mapping[str, str]) -> None:
        self.models = {name: _model(name) for name in names}
        self.answers = answers
        self.listings = 0
        self.fail_listing_after = 2

    async def snapshot(
        self, progress: Progress | None = None, *, records: MakeRecord = RawRecord.of
    ) -> Snapshot:
        self.listings += 1
        if self.listings > self.fail_listing_after:
            raise ListingIncompleteError(f"{PROVIDER}: list models failed: HTTP 503")
        return Snapshot(
            provider=PROVIDER,
            provider_type="fabric",
            location="workspace ws",
            models=tuple(self.models.values()),
        )

    async def delete_version(self, model_id: str, version_id: str) -> None:
        raise AssertionError("the plan deletes whole models")

    async def delete_models(self, model_ids: Sequence[str]) -> list[ReconcileError | None]:
        return [self._delete(model_id) for model_id in model_ids]

    def _delete(self, model_id: str) -> ReconcileError | None:
        answer = self.answers.get(model_id, "ok")
        if answer in ("ok", "lost", "gone"):
            self.models.pop(model_id)
        if answer == "lost":
            return ProviderError(f"delete model {model_id} failed: HTTP 500", status=500)
        if answer == "gone":
            return NotFoundError(f"delete model {model_id} failed: HTTP 404", status=404)
        if answer == "credential":
            return NotFoundError(
                f"delete model {model_id} failed: HTTP 404 NotFound",
                status=404,
                code="NotFound",
                platform_message=CREDENTIAL_NOT_FOUND,
            )
        if answer == "refused":
            return ProviderError(f"delete model {model_id} failed: HTTP 409", status=409)
        if answer == "error":
            return ProviderError(f"delete model {model_id} failed: HTTP 500", status=500)
        return None

    async def aclose(self) -> None:
        pass


def _apply(
    tmp_path: Path, answers: Mapping[str, str], *, verify_listing_fails: bool = False
) -> tuple[ApplyResult, Platform, dict[str, Status]]:
    manifest = _manifest(tmp_path)
    names = ["keep", *answers]
    platform = Platform(names, answers)
    if verify_listing_fails:
        platform.fail_listing_after = 2  # the plan's, the apply's; not the verification's
    else:
        platform.fail_listing_after = 99

    def replan(live: Mapping[str, Snapshot]) -> Plan:
        return build_plan(manifest, live, tool_version="test")

    async def run() -> ApplyResult:
        plan = replan({PROVIDER: await platform.snapshot()})
        with Journal(tmp_path / "journal.jsonl") as journal:
            return await Applier({PROVIDER: platform}, journal, replan=replan).apply(plan)

    result = asyncio.run(run())
    last_word: dict[str, Status] = {}
    for record in read_journal(tmp_path / "journal.jsonl"):
        if record["event"] in ("delete_outcome", "delete_verified"):
            last_word[record["id"]] = record["outcome"]
    return result, platform, last_word


def _statuses(result: ApplyResult) -> dict[str, Status]:
    return {outcome.change.id: outcome.status for outcome in result.outcomes}


def test_a_credential_not_found_is_never_already_gone(tmp_path: Path) -> None:
    result, platform, journaled = _apply(tmp_path, {"m1": "credential", "m2": "ok"})
    assert "m1" in platform.models  # nothing happened to it
    assert _statuses(result) == {"m1": "failed", "m2": "deleted"}
    assert journaled == {"m1": "failed", "m2": "deleted"}
    assert result.failed[0].verified and "NotFound" in (result.failed[0].error or "")


def test_is_auth_failure_reads_the_platforms_words_whatever_the_status() -> None:
    from reconcile.applier import is_auth_failure

    for status in (400, 401, 404):
        error = NotFoundError(
            "not found", status=status, code="NotFound", platform_message=CREDENTIAL_NOT_FOUND
        )
        assert is_auth_failure(error)
    assert is_auth_failure(ProviderError("x", status=403))
    assert not is_auth_failure(NotFoundError("x", status=404, code="ModelNotFound"))


def test_a_not_found_for_an_object_still_listed_is_failed(tmp_path: Path) -> None:
    """Whatever the answer's class, a listing that still shows the object settles it."""
    result, platform, journaled = _apply(tmp_path, {"m1": "credential"})
    assert "m1" in platform.models
    assert _statuses(result) == journaled == {"m1": "failed"}
    assert result.outcomes[0].verified


def test_already_gone_is_confirmed_by_listing(tmp_path: Path) -> None:
    result, _, journaled = _apply(tmp_path, {"m1": "gone"})
    assert _statuses(result) == journaled == {"m1": "already_gone"}
    assert result.outcomes[0].verified
    assert result.outcomes[0].error == "confirmed by listing"


def test_a_delete_whose_answer_was_lost_is_reported_deleted_once_listed(tmp_path: Path) -> None:
    result, platform, journaled = _apply(tmp_path, {"m1": "lost", "m2": "error", "m3": "refused"})
    assert set(platform.models) == {"keep", "m2", "m3"}
    assert _statuses(result) == journaled == {"m1": "deleted", "m2": "failed", "m3": "failed"}
    deleted = next(o for o in result.outcomes if o.change.id == "m1")
    assert deleted.verified and (deleted.error or "").startswith("confirmed by listing")


def test_a_5xx_is_unknown_not_failed_when_no_listing_can_verify_it(tmp_path: Path) -> None:
    result, platform, journaled = _apply(
        tmp_path, {"m1": "lost", "m2": "gone", "m3": "refused"}, verify_listing_fails=True
    )
    assert "m1" not in platform.models
    # Unverified: a 500 may have come after the delete; a not-found is not confirmed; a
    # refusal the platform made for sure stays failed.
    assert _statuses(result) == journaled == {"m1": "unknown", "m2": "unknown", "m3": "failed"}
    lost = next(outcome for outcome in result.outcomes if outcome.change.id == "m1")
    assert "HTTP 500" in (lost.error or "") and "no listing could confirm it" in (lost.error or "")


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429, None])
def test_an_answer_that_may_follow_the_delete_is_unknown_until_verified(status: int | None) -> None:
    from reconcile.applier import _outcome

    plan_change = build_plan(
        _manifest_for_unit(), {PROVIDER: _snapshot(["keep", "m1"])}, tool_version="t"
    ).deletes()[0]
    error = ProviderError("delete failed", status=status)
    assert _outcome(plan_change, error).status == "unknown"
    refused = ProviderError("delete refused", status=409)
    assert _outcome(plan_change, refused).status == "failed"


def _snapshot(names: Sequence[str]) -> Snapshot:
    return Snapshot(
        provider=PROVIDER,
        provider_type="fabric",
        location="workspace ws",
        models=tuple(_model(name) for name in names),
    )


def _manifest_for_unit() -> Manifest:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return _manifest(Path(folder))
