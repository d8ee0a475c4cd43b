"""The plan: a value that says, for every live object in scope, what apply will do and why.

A plan is made by `planner.build_plan` (pure) and executed by `applier` (never recomputed). Saved
as versioned JSON (`FORMAT_VERSION`); `plan_digest` covers everything but the creation time, so the
same decisions on the same live state always carry the same digest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from reconcile.errors import PlanFileError
from reconcile.model import (
    FieldChange,
    RawRecord,
    ServiceUse,
    digest,
    json_text,
    strict_json_object,
    trusted,
)

#: 2: digests are of canonical JSON as orjson writes it (UTF-8, not \u escapes; its floats): a
#: plan file of format 1 with such values would fail its digest check as if edited, so format 1
#: is refused as a format this build does not read.
#: 3: a change's digest covers its record as the record's text (the platform's key order), not
#: re-encoded with sorted keys: a plan file of format 2 would fail its digest check as if edited.
FORMAT_VERSION = 3
#: What a file that is not a plan file is told to be replaced with.
PLAN_FILE_HINT = "give a plan file written by `reconcile plan -o FILE`"

__all__ = ["FieldChange"]  # re-exported: drift records carry them


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Action(StrEnum):
    DELETE = "delete"
    NOOP = "no-op"


class Kind(StrEnum):
    MODEL = "model"
    VERSION = "version"


class Reason(StrEnum):
    """Why a change is what it is. For people and reports: code never branches on it."""

    #: Declared and live: kept.
    DECLARED = "declared"
    #: Live in scope and not declared: deleted.
    NOT_IN_MANIFEST = "not_in_manifest"
    #: Declared with `absent = true`: deleted.
    DECLARED_ABSENT = "declared_absent"
    #: Undeclared version kept as one of the policy's `keep_latest` newest.
    RETENTION_KEEP_LATEST = "retention_keep_latest"
    #: Matches a `protect` glob or is declared `protect = true`: kept.
    PROTECTED = "protected"
    #: Would be deleted, but an inference service uses it: blocked.
    IN_USE = "in_use"
    #: Several live objects answer to one declared name: never deleted.
    AMBIGUOUS = "ambiguous"
    #: The last version of a declared model: never deleted.
    LAST_VERSION = "last_version"
    #: Created less than the policy's `min_age` ago, or when is unknown: kept.
    TOO_NEW = "too_new"
    #: Undeclared version created within the policy's `keep_within`: kept.
    RETENTION_KEEP_WITHIN = "retention_keep_within"
    #: One of the `keep_before_in_use` versions created just before one a service uses: kept.
    ROLLBACK_TARGET = "rollback_target"
    #: Deletable, but not yet for the policy's `grace` period: kept for now.
    GRACE_PENDING = "grace_pending"


class Group(StrEnum):
    """What a reason does to its object, as plans and reports count and show it."""

    #: Declared and live: kept as it is.
    IN_SYNC = "in_sync"
    #: Undeclared, or declared absent: apply deletes it.
    DELETE = "delete"
    #: Would be deleted, but an inference service uses it.
    BLOCKED = "blocked"
    #: A declaration cannot tell it apart from its namesakes: never touched.
    AMBIGUOUS = "ambiguous"
    #: A protect pattern or `protect = true` keeps it.
    PROTECTED = "protected"
    #: Kept by a retention rule (keep_latest, keep_within, min_age, a rollback target, the last
    #: version of a declared model, a grace period still running).
    KEPT = "kept"


#: The one table of which group each reason is in: read by `Summary`, the renderers and drift.
REASON_GROUPS: dict[Reason, Group] = {
    Reason.DECLARED: Group.IN_SYNC,
    Reason.NOT_IN_MANIFEST: Group.DELETE,
    Reason.DECLARED_ABSENT: Group.DELETE,
    Reason.IN_USE: Group.BLOCKED,
    Reason.AMBIGUOUS: Group.AMBIGUOUS,
    Reason.PROTECTED: Group.PROTECTED,
    Reason.RETENTION_KEEP_LATEST: Group.KEPT,
    Reason.LAST_VERSION: Group.KEPT,
    Reason.TOO_NEW: Group.KEPT,
    Reason.RETENTION_KEEP_WITHIN: Group.KEPT,
    Reason.ROLLBACK_TARGET: Group.KEPT,
    Reason.GRACE_PENDING: Group.KEPT,
}


class DriftKind(StrEnum):
    #: Declared, not live.
    MISSING = "missing"
    #: Declared and live, with declared attributes that differ.
    CHANGED = "changed"
    #: Declared name matches several live objects.
    AMBIGUOUS = "ambiguous"


class Change(Record):
    """What the plan does with one live object."""

    #: Unique, stable name of the object: PROVIDER/MODEL or PROVIDER/MODEL/VERSION; "#ID" is added
    #: where a name is shared by several live objects.
    address: str
    provider: str
    kind: Kind
    #: The platform's id of the object.
    id: str
    name: str
    #: For versions: the model they belong to.
    model_id: str | None = None
    model_name: str | None = None
    #: ["delete"] or ["no-op"].
    actions: tuple[Action, ...]
    action_reason: Reason
    #: One sentence for people: why, and what to do about it where something can be done.
    detail: str
    #: For in_use: the services that keep the object alive.
    blocked_by: tuple[ServiceUse, ...] = ()
    #: For a whole-model delete: the ids of the versions that go with it.
    version_ids: tuple[str, ...] = ()
    #: Digest of the object's live state at plan time; apply refuses if it changed.
    state_digest: str = ""
    #: The full live record (for deletes and blocked objects), as the platform returned it.
    before: RawRecord | None = None

    @classmethod
    def trusted(
        cls,
        *,
        address: str,
        provider: str,
        kind: Kind,
        id: str,
        name: str,
        model_id: str | None,
        model_name: str | None,
        actions: tuple[Action, ...],
        action_reason: Reason,
        detail: str,
        blocked_by: tuple[ServiceUse, ...],
        version_ids: tuple[str, ...],
        state_digest: str,
        before: RawRecord | None,
    ) -> Change:
        """A change from the planner's own typed values, unvalidated and sharing one fields set
        (a plan holds 30k changes at 100k versions; two during an apply): see `trusted`."""
        values = {
            "address": address,
            "provider": provider,
            "kind": kind,
            "id": id,
            "name": name,
            "model_id": model_id,
            "model_name": model_name,
            "actions": actions,
            "action_reason": action_reason,
            "detail": detail,
            "blocked_by": blocked_by,
            "version_ids": version_ids,
            "state_digest": state_digest,
            "before": before,
        }
        return trusted(cls, values)

    def json_value(self, *, record_text: bool = False) -> dict[str, Any]:
        """`model_dump(mode="json")`, made directly: a plan's 30,000 changes went through
        pydantic's serializer at a quarter of the planning's CPU. Every field as it is (orjson
        writes enums and tuples as JSON does), the services as objects and the record parsed;
        the tests hold both equal for every kind of change. With `record_text`, the record as
        its text where it reads back as it is (`RawRecord.embedded`): for the digest."""
        value = dict(self.__dict__)
        if self.blocked_by:
            value["blocked_by"] = [service.model_dump(mode="json") for service in self.blocked_by]
        if self.before is not None:
            value["before"] = self.before.embedded() if record_text else self.before.value()
        return value

    def digest(self) -> str:
        """The change's digest, its record as the text it is: parsing and encoding again a
        large plan's 18,000 deleted records (sorted keys) was 60% of its digest's time."""
        return digest(self.json_value(record_text=True), self.json_value)

    @property
    def is_delete(self) -> bool:
        return Action.DELETE in self.actions

    @property
    def identity(self) -> tuple[str, str, str, str | None]:
        """What the change is about, whatever its address: provider, kind, id and model."""
        return (self.provider, self.kind.value, self.id, self.model_id)

    @property
    def group(self) -> Group:
        return REASON_GROUPS[self.action_reason]

    @property
    def is_blocked(self) -> bool:
        """Shown and counted as blocked: in use, or ambiguous."""
        return self.group in (Group.BLOCKED, Group.AMBIGUOUS)

    @property
    def is_kept(self) -> bool:
        """Shown and counted as kept: protected, or by a retention rule."""
        return self.group in (Group.PROTECTED, Group.KEPT)


class Drift(Record):
    address: str
    provider: str
    kind: Kind
    drift: DriftKind
    id: str | None = None
    fields: tuple[FieldChange, ...] = ()
    detail: str
    #: How to resolve it.
    hint: str = ""


class ProviderScope(Record):
    """One provider scope the plan looked at."""

    provider: str
    type: str
    scope: str
    location: str
    #: Digest of every live object in scope at plan time.
    fingerprint: str
    models: int
    versions: int


class Summary(Record):
    delete: int = 0
    #: In use or ambiguous.
    blocked: int = 0
    protected: int = 0
    #: By a retention rule.
    kept: int = 0
    drifted: int = 0
    in_sync: int = 0

    @classmethod
    def of(cls, changes: Iterable[Change], drifted: int) -> Summary:
        """The counts of `changes` by group (`REASON_GROUPS`), and of `drifted` drift records."""
        deletes = 0
        groups: Counter[Group] = Counter()
        for change in changes:
            if change.is_delete:
                deletes += 1
            else:
                groups[change.group] += 1
        return cls(
            delete=deletes,
            blocked=groups[Group.BLOCKED] + groups[Group.AMBIGUOUS],
            protected=groups[Group.PROTECTED],
            kept=groups[Group.KEPT],
            drifted=drifted,
            in_sync=groups[Group.IN_SYNC],
        )


class Attribution(Record):
    """`plan --base`: each delete against the manifests before the change (a path or git ref)."""

    base: str
    #: Deletes the plan before the change would not make: this change causes them.
    caused_by_change: tuple[str, ...] = ()
    #: Deletes the plan before the change makes too: drift from outside git.
    already_undeclared: tuple[str, ...] = ()


class Unlisted(Record):
    """A provider scope that could not be listed when the plan was made: planned for nothing."""

    provider: str
    #: The call and error that failed it, as shown (platform text escaped).
    error: str

    def notice(self, document: str) -> str:
        """What a `document` (plan, report) made without this provider says first."""
        return (
            f'provider "{self.provider}" could not be listed, so this {document} says nothing '
            f"of it ({self.error})"
        )


_Provided = TypeVar("_Provided", Change, Drift)


def _by_provider(
    scopes: Iterable[ProviderScope], records: Iterable[_Provided]
) -> dict[str, list[_Provided]]:
    """Each provider's records, in their order: one pass for what goes scope by scope (a scan
    of every record per scope was quadratic over 200 workspaces)."""
    grouped: dict[str, list[_Provided]] = {scope.provider: [] for scope in scopes}
    for record in records:
        grouped.setdefault(record.provider, []).append(record)
    return grouped


class Plan(Record):
    format_version: int = FORMAT_VERSION
    tool_version: str
    #: ISO 8601 UTC; set by whoever saved the plan (the planner has no clock). Not in the digest.
    created_at: str | None = None
    #: The manifest file or folder the plan was made from, as given. Not in the digest.
    manifest_path: str = ""
    manifest_digest: str
    scopes: tuple[ProviderScope, ...]
    resource_changes: tuple[Change, ...]
    drift: tuple[Drift, ...] = ()
    #: Addresses the plan was limited to (--target); empty: the whole manifest.
    targets: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    summary: Summary
    #: With `plan --base`: which deletes the change causes. Not in the digest (it says why, not
    #: what, is deleted).
    attribution: Attribution | None = None
    #: Providers that could not be listed: a saved plan carries them, so it cannot hide them
    #: (apply refuses it without --keep-going). In the digest when there are any.
    unlisted: tuple[Unlisted, ...] = ()
    plan_digest: str = ""

    def deletes(self) -> list[Change]:
        return [change for change in self.resource_changes if change.is_delete]

    def notices(self) -> list[str]:
        """What every rendering says first: the plan's warnings, and each provider it could not
        list (it says nothing of those, which a reader of the plan alone would not know)."""
        return [
            *self.warnings,
            *(
                f"{item.notice('plan')}; apply refuses the plan unless --keep-going"
                for item in self.unlisted
            ),
        ]

    def changes_by_provider(self) -> dict[str, list[Change]]:
        return _by_provider(self.scopes, self.resource_changes)

    def drift_by_provider(self) -> dict[str, list[Drift]]:
        return _by_provider(self.scopes, self.drift)

    def compute_digest(self) -> str:
        """A digest of digests: each change is hashed on its own, so the whole document (every
        `before` record) is never built in memory at once."""
        head = self.model_dump(
            mode="json",
            exclude={
                *("plan_digest", "created_at", "manifest_path", "resource_changes", "drift"),
                "attribution",
                *(() if self.unlisted else ("unlisted",)),
            },
        )
        return digest(
            [
                digest(head),
                [change.digest() for change in self.resource_changes],
                [digest(item.model_dump(mode="json")) for item in self.drift],
            ]
        )

    def sealed(self) -> Plan:
        return self.model_copy(update={"plan_digest": self.compute_digest()})

    def to_json(self) -> str:
        return "".join(self.json_chunks())

    def json_chunks(self) -> Iterator[str]:
        """The plan file in pieces: see `json_chunks`."""
        return json_chunks(self, "resource_changes")

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> Plan:
        """A plan file as read (a file, a state store's object, a forge's artifact): UTF-8 text,
        as `plan -o` writes it. Anything else is refused naming `source`, not decoded with
        replacements (its records would no longer be what the platform sent)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PlanFileError(
                f"{source}: not a plan file (not UTF-8 text: byte {error.start} is "
                f"{data[error.start]:#04x})",
                hint=PLAN_FILE_HINT,
            ) from None
        return cls.from_json(text, source=source)

    @classmethod
    def from_json(cls, text: str, *, source: str) -> Plan:
        # Each change made as it is read: its parsed record is dropped as soon as it is text
        # again, so a large plan file (30,000 changes) is never held parsed whole. Its errors
        # wait until the file is known to be a plan of this format.
        invalid: list[tuple[int, ValidationError]] = []

        def change(item: Any, index: int) -> Any:
            try:
                return Change.model_validate(item)
            except ValidationError as error:
                if not invalid:
                    invalid.append((index, error))
                return item

        try:
            data = strict_json_object(text, "resource_changes", change)
        except ValueError as exc:
            raise PlanFileError(f"{source}: not a plan file (invalid JSON: {exc})") from None
        if not isinstance(data, dict) or "format_version" not in data:
            raise PlanFileError(f"{source}: not a plan file (no format_version)")
        if data["format_version"] != FORMAT_VERSION:
            raise PlanFileError(
                f"{source}: plan format_version {data['format_version']!r} is not supported "
                f"(this reconcile reads {FORMAT_VERSION})",
                hint="make the plan again with this version of reconcile",
            )
        if invalid:
            index, error = invalid[0]
            raise _invalid_plan(source, error, ("resource_changes", index))
        try:
            plan = cls.model_validate(data)
        except ValidationError as exc:
            raise _invalid_plan(source, exc) from None
        if plan.plan_digest != plan.compute_digest():
            raise PlanFileError(
                f"{source}: plan_digest does not match the plan's content: the file was edited",
                hint="never edit a plan file; make a new plan",
            )
        return plan


def _invalid_plan(
    source: str, error: ValidationError, within: tuple[str | int, ...] = ()
) -> PlanFileError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in (*within, *first["loc"]))
    return PlanFileError(f"{source}: invalid plan file at {where}: {first['msg']}")


def json_chunks(record: BaseModel, changes: str) -> Iterator[str]:
    """`record.model_dump(mode="json")` as indented JSON, byte for byte, made a field and a change
    (of its field `changes`) at a time. Encoding the whole dump at once held a large plan's
    30,000 changes with their records parsed, then one text of them: `plan -o` peaked at
    1,056 MB, and at 267 (what the plan itself takes) written from these pieces as they come,
    in 11 s instead of 19."""
    head = record.model_dump(mode="json", exclude={changes})
    yield "{"
    for number, name in enumerate(type(record).model_fields):
        yield f"{',' if number else ''}\n  {json_text(name)}: "
        if name != changes:
            yield json_text(head[name], indent=2).replace("\n", "\n  ")
            continue
        items: Sequence[Change] = getattr(record, name)
        if not items:
            yield "[]"
            continue
        # Each change at the depth the whole document's encoding puts it (raw newlines are the
        # encoder's own: those in strings are escaped).
        for index, change in enumerate(items):
            opening = "[\n    " if not index else ",\n    "
            yield opening + _change_text(change).replace("\n", "\n    ")
        yield "\n  ]"
    yield "\n}\n"


def _change_text(change: Change) -> str:
    """A change as indented JSON: by orjson, ten times the standard encoder's speed on a large
    plan's 30,000; what orjson refuses (an integer beyond 64 bits, a lone surrogate in a
    platform's record) by `json_text`. Either reads back as the same value."""
    value = change.json_value()
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json_text(value, indent=2)
