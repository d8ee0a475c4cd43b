"""One report from many plan or drift documents: the records, and the pure merge.

A CI matrix plans (or reports drift on) one provider scope per job; `merge` joins their JSON
documents into one report with totals and a row per provider, as one process over all the
providers would have counted them. It refuses what cannot be joined honestly: documents of two
kinds, documents made from different manifests, and a provider covered by two documents.

Counting follows the plan's own `Summary` (every line of a plan counts one, whatever it takes
along: a whole-model delete is one model, with `delete_with_models` saying how many versions go
with it) and the drift report's `Counts`.

About 450 lines: the records of a merged report, the refusals and the merge, which count in
the records' own terms and are read together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from reconcile.drift import CATEGORIES, Category, Counts, DriftReport, Item
from reconcile.errors import ReconcileError
from reconcile.model import json_text
from reconcile.plan import (
    Change,
    Drift,
    Group,
    Kind,
    Plan,
    ProviderScope,
    Reason,
    json_chunks,
)

#: The format of the merged report's JSON; a change that breaks readers raises it.
FORMAT_VERSION = 1


class ReportError(ReconcileError):
    """Documents that cannot be read or merged: the message names the files at fault."""


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(Record):
    """One document the report was merged from."""

    #: The file, as given (globs expanded).
    file: str
    #: The provider scopes it covers.
    providers: tuple[str, ...]
    #: The plan's digest (a drift report's: the plan it was made from).
    plan_digest: str
    tool_version: str
    created_at: str | None = None


class Tally(Record):
    """A count by kind: `objects` = `models` + `versions`."""

    models: int = 0
    versions: int = 0
    objects: int = 0


class PlanCounts(Record):
    """A plan's lines by what they do, by kind; `objects` of each is the plan `Summary`'s figure."""

    #: Live objects in scope (the plan's `scopes[].models` and `.versions`).
    in_scope: Tally = Tally()
    delete: Tally = Tally()
    #: Versions that whole-model deletes take along (not lines of their own).
    delete_with_models: int = 0
    #: In use or ambiguous: never deleted.
    blocked: Tally = Tally()
    protected: Tally = Tally()
    #: By retention rules: `keep_latest`, the last version of a declared model.
    kept: Tally = Tally()
    #: Drift records: missing, changed, ambiguous.
    drifted: Tally = Tally()
    in_sync: Tally = Tally()


class Row(Record):
    """A provider scope of the report."""

    provider: str
    type: str
    scope: str
    location: str
    #: The document the provider's figures come from.
    file: str


class PlanRow(Row):
    counts: PlanCounts


class DriftRow(Row):
    counts: Counts


class Merged(Record):
    """What every merged report holds, whichever kind of document it was merged from."""

    format_version: int = FORMAT_VERSION
    #: "plan" or "drift": the kind of the documents merged.
    kind: str
    manifest_digest: str
    sources: tuple[Source, ...]
    #: Each document's warnings (targeting, ...), prefixed by its file, and the merge's own.
    warnings: tuple[str, ...] = ()


class MergedPlan(Merged):
    kind: Literal["plan"] = "plan"
    total: PlanCounts
    #: By provider name.
    providers: tuple[PlanRow, ...]
    #: Every line but the in-sync ones: by provider, then deletes, blocked, kept, then address.
    changes: tuple[Change, ...]
    #: By provider, then address.
    drift: tuple[Drift, ...]

    @property
    def has_changes(self) -> bool:
        """Anything to delete (what `plan --detailed-exitcode` exits 2 for)."""
        return self.total.delete.objects > 0


class MergedDrift(Merged):
    kind: Literal["drift"] = "drift"
    #: True when any drift category is not zero, as `reconcile drift` decides it.
    drifted: bool
    total: Counts
    providers: tuple[DriftRow, ...]
    #: By provider, then category (in `CATEGORIES` order), then address.
    items: tuple[Item, ...]

    @property
    def has_changes(self) -> bool:
        return self.drifted


MergedReport = MergedPlan | MergedDrift


@dataclass(frozen=True)
class Document:
    """A plan or drift report, read and checked, with the file it came from."""

    file: str
    content: Plan | DriftReport

    @property
    def kind(self) -> str:
        return "plan" if isinstance(self.content, Plan) else "drift"

    @property
    def providers(self) -> tuple[str, ...]:
        if isinstance(self.content, Plan):
            return tuple(scope.provider for scope in self.content.scopes)
        return tuple(provider.provider for provider in self.content.providers)


def to_json(report: MergedReport) -> str:
    if isinstance(report, MergedPlan):  # its changes carry their records: one at a time
        return "".join(json_chunks(report, "changes"))
    return json_text(report.model_dump(mode="json"), indent=2) + "\n"


def merge(documents: Sequence[Document]) -> MergedReport:
    """One report from `documents`, or a ReportError naming the files that cannot be merged."""
    if not documents:
        raise ReportError("no document to merge", hint="give plan or drift JSON files, or a glob")
    _check_kinds(documents)
    _check_manifests(documents)
    owners = _check_providers(documents)
    sources = tuple(_source(document) for document in documents)
    warnings = _warnings(documents)
    first = documents[0].content
    if isinstance(first, Plan):
        plans = [(d.file, d.content) for d in documents if isinstance(d.content, Plan)]
        return _merge_plans(plans, owners, first.manifest_digest, sources, warnings)
    reports = [d.content for d in documents if isinstance(d.content, DriftReport)]
    return _merge_drift(reports, owners, first.manifest_digest, sources, warnings)


# -- refusals -----------------------------------------------------------------------------------


def _files(documents: Iterable[Document], limit: int = 3) -> str:
    files = [document.file for document in documents]
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def _check_kinds(documents: Sequence[Document]) -> None:
    plans = [document for document in documents if document.kind == "plan"]
    reports = [document for document in documents if document.kind == "drift"]
    if plans and reports:
        raise ReportError(
            f"cannot merge plans with drift reports: {_files(plans)} "
            f"{'is a plan' if len(plans) == 1 else 'are plans'}, {_files(reports)} "
            f"{'is a drift report' if len(reports) == 1 else 'are drift reports'}",
            hint="merge the plans (reconcile plan --format json) and the drift reports "
            "(reconcile drift --format json) apart",
        )


def _check_manifests(documents: Sequence[Document]) -> None:
    by_digest: dict[str, list[Document]] = {}
    for document in documents:
        by_digest.setdefault(document.content.manifest_digest, []).append(document)
    if len(by_digest) == 1:
        return
    groups = "; ".join(
        f"{_files(group)} from {digest}" for digest, group in sorted(by_digest.items())
    )
    raise ReportError(
        f"the documents were made from different manifests: {groups}",
        hint="make every document of one report from the same commit of the manifests",
    )


def _check_providers(documents: Sequence[Document]) -> dict[str, str]:
    """Provider -> the file that covers it; refuses a provider covered twice, or not at all."""
    owners: dict[str, str] = {}
    for document in documents:
        if not document.providers:
            raise ReportError(
                f"{document.file}: covers no provider scope",
                hint="a matrix job whose listing failed has no figures to merge: run it again",
            )
        for provider in document.providers:
            if provider in owners:
                raise ReportError(
                    f"provider {provider} is covered twice: by {owners[provider]} and by "
                    f"{document.file}",
                    hint="merge one document per provider (plan --provider NAME in each job)",
                )
            owners[provider] = document.file
    return owners


def _source(document: Document) -> Source:
    content = document.content
    return Source(
        file=document.file,
        providers=document.providers,
        plan_digest=content.plan_digest,
        tool_version=content.tool_version,
        created_at=content.created_at,
    )


def _warnings(documents: Sequence[Document]) -> tuple[str, ...]:
    warnings: list[str] = []
    for document in documents:
        # Its notices: a plan's warnings, and the providers a plan or report could not list (it
        # says nothing of them, which the merged report would otherwise not say either).
        warnings += [f"{document.file}: {notice}" for notice in document.content.notices()]
    versions = sorted({document.content.tool_version for document in documents})
    if len(versions) > 1:
        warnings.append(
            "the documents were made by different versions of reconcile ("
            + ", ".join(versions)
            + "): their decisions may differ where those versions differ"
        )
    return tuple(warnings)


# -- plans --------------------------------------------------------------------------------------

#: What each kept or blocked line counts as in a plan's `Summary` (by its `REASON_GROUPS` group).
_MEASURES: dict[Group, str] = {
    Group.BLOCKED: "blocked",
    Group.AMBIGUOUS: "blocked",
    Group.PROTECTED: "protected",
    Group.KEPT: "kept",
    Group.IN_SYNC: "in_sync",
}
#: The order of a provider's lines in the report.
_ORDER = {"delete": 0, "blocked": 1, "protected": 2, "kept": 2, "in_sync": 3}


def _measure(change: Change) -> str:
    if change.is_delete:
        return "delete"
    return _MEASURES.get(change.group, "in_sync")


def _tally(counter: Mapping[tuple[str, Kind], int], measure: str) -> Tally:
    models, versions = (
        counter.get((measure, Kind.MODEL), 0),
        counter.get((measure, Kind.VERSION), 0),
    )
    return Tally(models=models, versions=versions, objects=models + versions)


def _plan_counts(
    scope: ProviderScope, changes: Sequence[Change], drift: Sequence[Drift]
) -> PlanCounts:
    counter: Counter[tuple[str, Kind]] = Counter()
    along = 0
    for change in changes:
        counter[_measure(change), change.kind] += 1
        if change.is_delete and change.kind is Kind.MODEL:
            along += len(change.version_ids)
    for item in drift:
        counter["drifted", item.kind] += 1
    return PlanCounts(
        in_scope=Tally(
            models=scope.models, versions=scope.versions, objects=scope.models + scope.versions
        ),
        delete=_tally(counter, "delete"),
        delete_with_models=along,
        blocked=_tally(counter, "blocked"),
        protected=_tally(counter, "protected"),
        kept=_tally(counter, "kept"),
        drifted=_tally(counter, "drifted"),
        in_sync=_tally(counter, "in_sync"),
    )


def _summed(values: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Field-wise sums of dumped records (nested records summed alike)."""
    total: dict[str, Any] = {}
    for value in values:
        for key, item in value.items():
            if isinstance(item, Mapping):
                total[key] = _summed([total.get(key, {}), item])
            else:
                total[key] = total.get(key, 0) + item
    return total


def _change_key(change: Change) -> tuple[str, int, str, str]:
    return (change.provider, _ORDER[_measure(change)], change.address, change.id)


def _merge_plans(
    plans: Sequence[tuple[str, Plan]],
    owners: Mapping[str, str],
    manifest_digest: str,
    sources: tuple[Source, ...],
    warnings: tuple[str, ...],
) -> MergedPlan:
    rows: list[PlanRow] = []
    changes: list[Change] = []
    drift: list[Drift] = []
    for _, plan in plans:
        by_provider, drift_by_provider = plan.changes_by_provider(), plan.drift_by_provider()
        for scope in plan.scopes:
            own, own_drift = by_provider[scope.provider], drift_by_provider[scope.provider]
            rows.append(
                PlanRow(
                    provider=scope.provider,
                    type=scope.type,
                    scope=scope.scope,
                    location=scope.location,
                    file=owners[scope.provider],
                    counts=_plan_counts(scope, own, own_drift),
                )
            )
            changes += [c for c in own if c.action_reason is not Reason.DECLARED]
            drift += own_drift
    rows.sort(key=lambda row: row.provider)
    total = PlanCounts.model_validate(_summed(row.counts.model_dump() for row in rows))
    return MergedPlan(
        manifest_digest=manifest_digest,
        sources=sources,
        warnings=warnings,
        total=total,
        providers=tuple(rows),
        changes=tuple(sorted(changes, key=_change_key)),
        drift=tuple(sorted(drift, key=lambda d: (d.provider, d.address, d.drift.value))),
    )


# -- drift reports ------------------------------------------------------------------------------


def _total_counts(counts: Iterable[Counts]) -> Counts:
    sums = _summed(c.model_dump(exclude={"declared", "coverage"}) for c in counts)
    declared = sums.get(Category.IN_SYNC.value, 0) + sums.get(Category.CHANGED.value, 0)
    live = sums.get("live", 0)
    return Counts(**sums, declared=declared, coverage=declared / live if live else 1.0)


def _merge_drift(
    reports: Sequence[DriftReport],
    owners: Mapping[str, str],
    manifest_digest: str,
    sources: tuple[Source, ...],
    warnings: tuple[str, ...],
) -> MergedDrift:
    order = {category: index for index, category in enumerate(CATEGORIES)}
    rows: list[DriftRow] = []
    items: list[Item] = []
    for report in reports:
        for provider in report.providers:
            rows.append(
                DriftRow(
                    provider=provider.provider,
                    type=provider.type,
                    scope=provider.scope,
                    location=provider.location,
                    file=owners[provider.provider],
                    counts=provider.counts,
                )
            )
            items += provider.items
    rows.sort(key=lambda row: row.provider)
    total = _total_counts(row.counts for row in rows)
    return MergedDrift(
        manifest_digest=manifest_digest,
        sources=sources,
        warnings=warnings,
        drifted=total.drifted > 0,
        total=total,
        providers=tuple(rows),
        items=tuple(
            sorted(items, key=lambda i: (i.provider, order[i.category], i.address, i.id or ""))
        ),
    )


# -- against the manifests ----------------------------------------------------------------------


def check_covers(report: MergedReport, manifest_digest: str, providers: Sequence[str]) -> None:
    """Refuse a report made from other manifests than these, or one that leaves out any of their
    providers (a matrix job that failed, or a provider added since the matrix was written)."""
    if report.manifest_digest != manifest_digest:
        raise ReportError(
            f"the documents were made from other manifests ({report.manifest_digest}) than the "
            f"ones given ({manifest_digest})",
            hint="give the manifests of the commit the matrix ran on",
        )
    covered = {row.provider for row in report.providers}
    missing = [provider for provider in providers if provider not in covered]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        raise ReportError(
            f"no document covers {len(missing)} of the manifests' {len(providers)} providers: "
            f"{shown}",
            hint="check that every matrix job succeeded and uploaded its document",
        )
