"""The drift report: how far live state has wandered from the manifests, as a value.

`build_drift_report(plan, manifest, snapshots)` is pure (no I/O, no clock): it sorts every live
object in scope into one category, per provider and in total, and says what share of them the
manifests declare. Renderers (`reconcile.render.*`) turn the report into text, JSON, markdown or
HTML; the JSON is this record as it is (`FORMAT_VERSION`).

Categories (of live objects in scope: a model and each of its versions count one each; `missing`
counts declarations):

- `in_sync`: declared and live, declared attributes equal (the versions of a model declared
  without a `versions` list count here: the declaration takes them as they are);
- `changed`: declared and live, with declared attributes that differ (field-level old -> new);
- `missing`: declared, not live;
- `unmanaged`: live and would be deleted by apply: undeclared (`not_in_manifest`) or declared
  `absent = true` (`declared_absent`); a whole-model delete takes its versions with it;
- `blocked`: would be deleted, but an inference service uses it (`in_use`) or a `protect` pattern
  holds it (`protected`); the versions of a model held whole by `protect` count here too;
- `ambiguous`: several live objects answer to one declared name: none of them is touched;
- `kept`: undeclared, and left alone by policy: `keep_latest` (`retention_keep_latest`), the last
  version of a declared model (`last_version`), or a model outside a `scope = "declared"`
  provider's declarations (`not_managed`). Not drift: the manifests' policy asks for it.

Drifted means any of changed, missing, unmanaged, blocked or ambiguous is not zero. Coverage is
the share of live objects in scope that the manifests declare and keep: (in_sync + changed) / live
(1.0 when nothing is live).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from reconcile.manifest import Manifest
from reconcile.model import FieldChange, LiveModel, ServiceUse, Snapshot, json_text
from reconcile.plan import Change, Drift, DriftKind, Group, Kind, Plan, Unlisted
from reconcile.scope import model_address, models_in_scope, shared_names, version_in_scope

FORMAT_VERSION = 1


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Category(StrEnum):
    IN_SYNC = "in_sync"
    CHANGED = "changed"
    MISSING = "missing"
    UNMANAGED = "unmanaged"
    BLOCKED = "blocked"
    AMBIGUOUS = "ambiguous"
    KEPT = "kept"


#: The categories that make a report drifted (exit code 2).
DRIFT_CATEGORIES = (
    Category.CHANGED,
    Category.MISSING,
    Category.UNMANAGED,
    Category.BLOCKED,
    Category.AMBIGUOUS,
)
#: Every category, in the order reports show them.
CATEGORIES = (Category.IN_SYNC, *DRIFT_CATEGORIES, Category.KEPT)

#: How reports name each category, and what it means, in a few words.
LABELS: dict[Category, tuple[str, str]] = {
    Category.IN_SYNC: ("in sync", "declared and live, as declared"),
    Category.CHANGED: ("changed", "declared attributes differ from the live ones"),
    Category.MISSING: ("missing", "declared, not live"),
    Category.UNMANAGED: ("unmanaged", "live and undeclared (or declared absent): apply deletes it"),
    Category.BLOCKED: ("blocked", "apply would delete it, but it is in use or protected"),
    Category.AMBIGUOUS: ("ambiguous", "several live objects answer to one declared name"),
    Category.KEPT: ("kept", "undeclared, kept by policy (keep_latest, last version, scope)"),
}

#: Reason of a `kept` item for an undeclared model of a provider with scope = "declared".
NOT_MANAGED = "not_managed"


class Counts(Record):
    """How many objects fall in each category, and the coverage they make."""

    #: Live objects in scope (models and versions; not presets, not ignored).
    live: int = 0
    #: Live objects the manifests declare and keep: in_sync + changed.
    declared: int = 0
    #: declared / live; 1.0 when nothing is live.
    coverage: float = 1.0
    in_sync: int = 0
    changed: int = 0
    #: Declarations with no live object (not live objects: they do not count in `live`).
    missing: int = 0
    unmanaged: int = 0
    blocked: int = 0
    ambiguous: int = 0
    kept: int = 0

    def of(self, category: Category) -> int:
        count: int = getattr(self, category.value)
        return count

    @property
    def drifted(self) -> int:
        """Objects (and missing declarations) in a drift category."""
        return sum(self.of(category) for category in DRIFT_CATEGORIES)


class Item(Record):
    """One line of a report: an object (or declaration) that is not in sync."""

    category: Category
    #: The plan's address of the object: PROVIDER/MODEL[/VERSION], "#ID" added where names repeat.
    address: str
    provider: str
    kind: Kind
    #: The platform's id; None for a missing declaration without one.
    id: str | None = None
    #: A plan reason code (`not_in_manifest`, `in_use`, ...), a drift kind (`changed`, `missing`)
    #: or `not_managed`. For people: what put the object in its category.
    reason: str
    #: One sentence: why, as the plan says it.
    detail: str
    #: How to resolve it, where reconcile knows.
    hint: str = ""
    #: For `changed`: each declared attribute that differs (`declared`, `live`).
    fields: tuple[FieldChange, ...] = ()
    #: For `in_use`: the services that keep the object alive.
    blocked_by: tuple[ServiceUse, ...] = ()
    #: For a model: how many of its versions go with it into this category.
    versions: int = 0


class ProviderDrift(Record):
    provider: str
    type: str
    scope: str
    location: str
    counts: Counts
    #: Everything not in sync, by category (in `CATEGORIES` order), then by address.
    items: tuple[Item, ...] = ()


class DriftReport(Record):
    format_version: int = FORMAT_VERSION
    tool_version: str
    #: ISO 8601 UTC, set by whoever made the report (the builder has no clock).
    created_at: str | None = None
    manifest_path: str = ""
    manifest_digest: str
    #: The digest of the plan the report was made from.
    plan_digest: str
    #: True when any drift category is not zero (exit code 2).
    drifted: bool
    total: Counts
    providers: tuple[ProviderDrift, ...]
    #: Providers that could not be listed: the report says nothing of them, and says so.
    unlisted: tuple[Unlisted, ...] = ()

    def notices(self) -> list[str]:
        """What every rendering says first: each provider the report could not list."""
        return [item.notice("report") for item in self.unlisted]

    def to_json(self) -> str:
        return json_text(self.model_dump(mode="json"), indent=2) + "\n"


#: The category of each plan group (`plan.REASON_GROUPS`): a report counts what a protect
#: pattern holds as blocked (apply would delete it but for the pattern).
_GROUP_CATEGORY: dict[Group, Category] = {
    Group.IN_SYNC: Category.IN_SYNC,
    Group.DELETE: Category.UNMANAGED,
    Group.BLOCKED: Category.BLOCKED,
    Group.PROTECTED: Category.BLOCKED,
    Group.AMBIGUOUS: Category.AMBIGUOUS,
    Group.KEPT: Category.KEPT,
}


def build_drift_report(
    plan: Plan, manifest: Manifest, snapshots: Mapping[str, Snapshot]
) -> DriftReport:
    """The drift report of `plan`, which `planner.build_plan(manifest, snapshots)` made.

    The plan decides; the snapshots only say which versions a model-level decision covers (a
    protected or unmanaged model holds versions that have no line of their own in the plan).
    """
    providers = []
    changes_of, drift_of = plan.changes_by_provider(), plan.drift_by_provider()
    for scope in plan.scopes:
        snapshot = snapshots.get(scope.provider)
        if snapshot is None:
            continue
        provider = scope.provider
        builder = _ProviderReport(
            provider, changes_of[provider], drift_of[provider], manifest, snapshot
        )
        providers.append(
            ProviderDrift(
                provider=scope.provider,
                type=scope.type,
                scope=scope.scope,
                location=scope.location,
                counts=builder.counts(),
                items=builder.items(),
            )
        )
    total = _add(provider.counts for provider in providers)
    return DriftReport(
        tool_version=plan.tool_version,
        created_at=plan.created_at,
        manifest_path=plan.manifest_path,
        manifest_digest=plan.manifest_digest,
        plan_digest=plan.plan_digest,
        drifted=total.drifted > 0,
        total=total,
        providers=tuple(providers),
        unlisted=plan.unlisted,
    )


def _coverage(declared: int, live: int) -> float:
    return declared / live if live else 1.0


def _add(counts: Iterable[Counts]) -> Counts:
    sums = {category.value: 0 for category in CATEGORIES}
    live = 0
    for item in counts:
        live += item.live
        for category in CATEGORIES:
            sums[category.value] += item.of(category)
    declared = sums[Category.IN_SYNC] + sums[Category.CHANGED]
    return Counts(live=live, declared=declared, coverage=_coverage(declared, live), **sums)


class _ProviderReport:
    """Sorts one provider's live objects into categories, from the plan's lines about them."""

    def __init__(
        self,
        provider: str,
        changes: list[Change],
        drift: list[Drift],
        manifest: Manifest,
        snapshot: Snapshot,
    ) -> None:
        """`changes` and `drift`: the plan's lines about this provider."""
        self.provider = provider
        self.scope = manifest.providers[provider].scope
        self.policy = manifest.policy_for(provider)
        self.snapshot = snapshot
        #: Kind -> id -> the plan's line about that object (ids are unique per kind).
        self.changes: dict[Kind, dict[str, Change]] = {Kind.MODEL: {}, Kind.VERSION: {}}
        for change in changes:
            self.changes[change.kind][change.id] = change
        self.drift = drift
        self.changed: dict[Kind, set[str]] = {Kind.MODEL: set(), Kind.VERSION: set()}
        for item in self.drift:
            if item.drift is DriftKind.CHANGED and item.id is not None:
                self.changed[item.kind].add(item.id)
        self.tally = dict.fromkeys(CATEGORIES, 0)
        self.lines: list[Item] = []
        self._sort()

    def _category(self, change: Change) -> Category:
        category = _GROUP_CATEGORY[change.group]
        if category is Category.IN_SYNC and change.id in self.changed[change.kind]:
            return Category.CHANGED
        return category

    def _sort(self) -> None:
        in_scope = models_in_scope(self.snapshot, self.policy)
        shared = shared_names(in_scope)
        model_changes, version_changes = self.changes[Kind.MODEL], self.changes[Kind.VERSION]
        for model in in_scope:
            change = model_changes.get(model.id)
            # No line for an in-scope model: undeclared, under scope = "declared".
            category = Category.KEPT if change is None else self._category(change)
            self.tally[category] += 1
            # A changed model's own attributes differ, not those of the versions it takes along.
            along_category = Category.IN_SYNC if category is Category.CHANGED else category
            # Versions without a line of their own go with their model's line: taken along by a
            # whole-model delete, held with a protected or ambiguous model, taken as they are by a
            # model declared without `versions`, or not managed with their model.
            along = 0
            for version in model.versions:
                if not version_in_scope(model, version, self.policy):
                    continue
                own = version_changes.get(version.id)
                if own is None:
                    along += 1
                    self.tally[along_category] += 1
                else:
                    version_category = self._category(own)
                    self.tally[version_category] += 1
                    self._line(own, version_category)
            if change is None:
                self._not_managed(model, along, shared)
            else:
                self._line(change, category, along if along_category is category else 0)
        for item in self.drift:
            # Ambiguous drift is reported through the held objects' own lines, not here.
            line_category = {
                DriftKind.MISSING: Category.MISSING,
                DriftKind.CHANGED: Category.CHANGED,
            }.get(item.drift)
            if line_category is None:
                continue
            if line_category is Category.MISSING:
                self.tally[Category.MISSING] += 1
            self.lines.append(
                Item(
                    category=line_category,
                    address=item.address,
                    provider=item.provider,
                    kind=item.kind,
                    id=item.id,
                    reason=item.drift.value,
                    detail=item.detail,
                    hint=item.hint,
                    fields=item.fields,
                )
            )

    def _line(self, change: Change, category: Category, along: int = 0) -> None:
        if category in (Category.IN_SYNC, Category.CHANGED):
            return  # in sync has no lines; changed ones come from the plan's drift records
        self.lines.append(
            Item(
                category=category,
                address=change.address,
                provider=change.provider,
                kind=change.kind,
                id=change.id,
                reason=change.action_reason.value,
                detail=change.detail,
                blocked_by=change.blocked_by,
                versions=along,
            )
        )

    def _not_managed(self, model: LiveModel, versions: int, shared: frozenset[str]) -> None:
        self.lines.append(
            Item(
                category=Category.KEPT,
                address=model_address(self.provider, model, shared),
                provider=self.provider,
                kind=Kind.MODEL,
                id=model.id,
                reason=NOT_MANAGED,
                detail=f'not declared, and scope = "{self.scope}" leaves undeclared models alone',
                hint="declare it to manage it (reconcile import writes the declarations)",
                versions=versions,
            )
        )

    def counts(self) -> Counts:
        live = sum(count for category, count in self.tally.items() if category != Category.MISSING)
        declared = self.tally[Category.IN_SYNC] + self.tally[Category.CHANGED]
        return Counts(
            live=live,
            declared=declared,
            coverage=_coverage(declared, live),
            **{category.value: count for category, count in self.tally.items()},
        )

    def items(self) -> tuple[Item, ...]:
        order = {category: index for index, category in enumerate(CATEGORIES)}
        return tuple(sorted(self.lines, key=lambda item: (order[item.category], item.address)))
