"""The state backend: what every store of reconcile's state offers, whichever it is.

Four things live in a state store: the lock per provider scope (one apply at a time), the journal
of receipts (one record per step of every apply; a deleted object's full record is in it before
its delete is sent), saved plans, and the first-seen ledger per provider scope. `local` keeps them
as files beside the manifests; an object store (S3 API: AWS, Huawei OBS, Baidu BOS) keeps them for
a team whose applies run on fresh pipeline runners. Nothing above `state/` knows which is in use.

Every method is synchronous: the CLI holds the lock across its confirmation prompt and several
event loops, so the lease must be renewed by something that owns no caller's loop. The applier
calls `extend` from a worker thread (`asyncio.to_thread`), as it fsyncs the journal today.

Over 450 lines on purpose: the backend interface and what every backend shares (the state
URL, the lock record and its refusals, the journal and ledger records), so that `local` and
`s3` cannot drift apart on them.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field

from reconcile.errors import LockError, ReconcileError
from reconcile.model import RawRecord, json_text, strict_json

#: How long a lock stays valid without renewal; the holder renews it every third of that.
DEFAULT_LEASE_SECONDS = 120.0
#: The credentials' variable names when the `[state]` table names none.
DEFAULT_AK_ENV = "AWS_ACCESS_KEY_ID"
DEFAULT_SK_ENV = "AWS_SECRET_ACCESS_KEY"

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# S3's bucket naming rules (lowercase, digits, dots, hyphens; 3 to 63 characters).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StateError(ReconcileError):
    """The state store failed or cannot be trusted: names the store, the operation and the fix.

    Never carries a secret: stores are shown by URL and endpoint, credentials by variable name.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str | None = None,
        operation: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"state store {store}" if store else "state store"
        text = f"{where}: {operation}: {message}" if operation else f"{where}: {message}"
        super().__init__(text, hint=hint)
        self.store = store
        self.operation = operation


class StateConflictError(StateError):
    """A conditional write lost: someone else changed the object since it was read."""


# -- configuration ---------------------------------------------------------------------------


class StateSpec(BaseModel):
    """The `[state]` table of the manifests (or `--state URL` and its environment variable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        "local",
        description="`local` (the `.reconcile/` folder beside the manifests), a directory, or "
        "s3://BUCKET/PREFIX on any store that speaks the S3 API.",
    )
    endpoint: str | None = Field(
        None,
        description="The object store's endpoint, e.g. https://obs.REGION.myhuaweicloud.com; "
        "AWS's own when omitted.",
    )
    region: str | None = Field(None, description="The region requests are signed for.")
    ak_env: str | None = Field(
        None, pattern=_ENV_NAME, description="Environment variable holding the access key."
    )
    sk_env: str | None = Field(
        None, pattern=_ENV_NAME, description="Environment variable holding the secret key."
    )
    security_token_env: str | None = Field(
        None, pattern=_ENV_NAME, description="Environment variable holding a session token."
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="Bucket in the path or in the host name (`auto`: the client picks)."
    )
    lease_seconds: float = Field(
        DEFAULT_LEASE_SECONDS,
        gt=0,
        description="How long a lock outlives its holder's last renewal before it is stale.",
    )


@dataclass(frozen=True)
class LocalLocation:
    path: str


@dataclass(frozen=True)
class S3Location:
    bucket: str
    #: Empty, or ending with "/": every key of the store starts with it.
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_state_url(url: str) -> LocalLocation | S3Location:
    """`local`, a directory path, or `s3://BUCKET/PREFIX`; anything else is a clear error."""
    text = url.strip()
    if text in ("", "local"):
        return LocalLocation("")
    scheme, sep, rest = text.partition("://")
    if not sep:
        return LocalLocation(text)
    if scheme.lower() != "s3":
        raise StateError(
            f"unknown scheme {scheme!r} in the state URL {text!r}",
            hint="use `local`, a directory, or s3://BUCKET/PREFIX (OBS and BOS speak S3 too)",
        )
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise StateError(
            f"{bucket!r} in the state URL {text!r} is not a bucket name",
            hint="write s3://BUCKET/PREFIX with a bucket of 3-63 lowercase letters, digits, "
            "dots or hyphens",
        )
    parts = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise StateError(f"the prefix of the state URL {text!r} may not contain . or ..")
    return S3Location(bucket, "".join(f"{part}/" for part in parts))


def split_object_url(url: str) -> tuple[str, str]:
    """`s3://b/p/plan.json` -> (`s3://b/p`, `plan.json`): the store and the key of a saved plan."""
    location = parse_state_url(url)
    if not isinstance(location, S3Location) or not location.prefix:
        raise StateError(
            f"{url!r} names no object",
            hint="write s3://BUCKET/PREFIX/NAME, e.g. s3://team-state/prod/plan.json",
        )
    head, _, name = location.prefix.rstrip("/").rpartition("/")
    return f"s3://{location.bucket}/{head}", name


def check_endpoint(endpoint: str) -> str:
    """An http(s) URL without credentials, path parameters or query (those go elsewhere)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StateError(
            f"the state endpoint {_shown(endpoint)} is not an http(s) URL",
            hint='write e.g. endpoint = "https://obs.cn-north-4.myhuaweicloud.com"',
        )
    if parts.username or parts.password or parts.query:
        raise StateError(
            "the state endpoint carries credentials or a query",
            hint="give only scheme://host[:port]; credentials go in environment variables named "
            "by ak_env and sk_env",
        )
    return endpoint.rstrip("/")


def _shown(text: str) -> str:
    """A user's value in a message: at most 80 printable characters, never userinfo."""
    parts = urlsplit(text)
    if parts.username or parts.password:
        text = text.replace(parts.netloc, parts.hostname or "")
    clean = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(clean[:80])


# -- the lock --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockInfo:
    """Who holds a scope's lock, and until when."""

    id: str
    scope: str
    #: The command that holds it ("apply").
    operation: str
    #: The user and host the holder runs as and on.
    holder: str
    host: str
    pid: int | None
    apply_id: str | None
    since: str | None
    #: The end of the lease as last renewed; None for a lock written before leases (by hand or by
    #: an older reconcile): it never expires on its own.
    expires: datetime | None
    lease_seconds: float | None
    #: The holder ran on this host and its process is gone (only the local store judges this:
    #: pids mean nothing across pipeline runners that share a host name).
    gone: bool = False

    def stale(self, now: datetime) -> bool:
        return self.gone or (self.expires is not None and now >= self.expires)

    def describe(self, now: datetime | None = None) -> str:
        text = (
            f"{self.operation} (lock id {self.id}"
            + (f", apply {self.apply_id}" if self.apply_id else "")
            + f", held by {self.holder}@{self.host} pid {self.pid if self.pid is not None else '?'}"
            + f" since {self.since or '?'}"
        )
        if self.expires is not None:
            text += f", lease until {self.expires.isoformat(timespec='seconds')}"
        text += ")"
        if self.gone:
            text += ": that process is no longer running, the lock is stale"
        elif now is not None and self.stale(now):
            text += ": its lease expired, the lock is stale (its holder died or was cut off)"
        return text

    def to_json(self) -> bytes:
        document = {
            "id": self.id,
            "scope": self.scope,
            "operation": self.operation,
            # `who` as the lock files of earlier versions spell it, so they can still read it.
            "who": f"{self.holder}@{self.host}",
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "apply_id": self.apply_id,
            "since": self.since,
            "expires": self.expires.isoformat(timespec="milliseconds") if self.expires else None,
            "lease_seconds": self.lease_seconds,
        }
        return json_text(document).encode()

    @classmethod
    def from_json(cls, data: bytes, scope: str) -> LockInfo:
        """Any lock document, this version's or an earlier one's; unreadable ones still name
        themselves (id "unreadable") so that they are reported, never silently taken over."""
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            document = {"id": "unreadable"}
        who = str(document.get("who", "?"))
        user, _, host = who.rpartition("@")
        pid = document.get("pid")
        lease = document.get("lease_seconds")
        return cls(
            id=str(document.get("id", "unreadable")),
            scope=str(document.get("scope", scope)),
            operation=str(document.get("operation", "another run")),
            holder=str(document.get("holder", user or who)),
            host=str(document.get("host", host or "?")),
            pid=pid if isinstance(pid, int) else None,
            apply_id=_str_or_none(document.get("apply_id")),
            since=_str_or_none(document.get("since")),
            expires=_time_or_none(document.get("expires")),
            lease_seconds=float(lease) if isinstance(lease, int | float) else None,
        )


def new_lock(scope: str, operation: str, apply_id: str | None, lease_seconds: float) -> LockInfo:
    now = utcnow()
    return LockInfo(
        id=uuid.uuid4().hex[:12],
        scope=scope,
        operation=operation,
        holder=_user(),
        host=socket.gethostname(),
        pid=os.getpid(),
        apply_id=apply_id,
        since=now.isoformat(timespec="seconds"),
        expires=now + timedelta(seconds=lease_seconds),
        lease_seconds=lease_seconds,
    )


def held_error(store: str, info: LockInfo) -> LockError:
    """The refusal a second acquire gets: who holds the lock, and what to do about it."""
    now = utcnow()
    if info.stale(now):
        hint = (
            f"if that run is gone, release the lock with `reconcile force-unlock {info.id}` "
            "(the store keeps it until then: an expired lease is never taken over silently)"
        )
    else:
        hint = (
            "wait for it to finish; only if you are sure that run is gone, release the lock "
            f"with `reconcile force-unlock {info.id} --force`"
        )
    return LockError(
        f"the state store {store} is locked for {info.scope} by {info.describe(now)}", hint=hint
    )


def check_unlock(store: str, scope: str, info: LockInfo | None, lock_id: str, force: bool) -> None:
    """Refuse a force-unlock of another lock, of no lock, or of a live holder without force."""
    if info is None:
        raise LockError(f"the state store {store} holds no lock for {scope}")
    if info.id != lock_id:
        raise LockError(
            f"the lock for {scope} in {store} has id {info.id}, not {lock_id}: not released",
            hint="give the id that the lock error showed",
        )
    if not force and not info.stale(utcnow()):
        raise LockError(
            f"the lock for {scope} in {store} is live: {info.describe()}; not released",
            hint="wait for its lease to run out, or add --force if you are sure that run is gone",
        )


class LockLost(Exception):
    """Renewal found the lock no longer ours (force-unlocked, and maybe taken by another run)."""


class HeldLock:
    """A lock this process holds. A background thread renews its lease every third of it; a
    holder checks `ensure()` before each irreversible step, which fails once the lock was taken
    away or the lease ran out while renewals failed. Release (the context's exit) deletes the
    lock only while it still carries this holder's id."""

    def __init__(
        self,
        store: str,
        info: LockInfo,
        *,
        renew: Callable[[], datetime],
        release: Callable[[], None],
    ) -> None:
        self.store = store
        self.info = info
        self._renew = renew
        self._release = release
        self._stop = threading.Event()
        self._lost: str | None = None
        self._last_error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"reconcile-lease-{info.id}", daemon=True
        )
        self._thread.start()

    @property
    def id(self) -> str:
        return self.info.id

    def _run(self) -> None:
        interval = (self.info.lease_seconds or DEFAULT_LEASE_SECONDS) / 3
        while not self._stop.wait(interval):
            try:
                expires = self._renew()
            except LockLost:
                self._lost = "another run released it with force-unlock"
                return
            except Exception as error:
                # Kept trying until the lease runs out: `ensure()` then refuses.
                self._last_error = (
                    str(error).splitlines()[0] if str(error) else type(error).__name__
                )
                continue
            self.info = replace(self.info, expires=expires)
            self._last_error = None

    def ensure(self) -> None:
        """Raise `LockError` unless the lock is still ours and its lease still runs."""
        if self._lost is not None:
            raise LockError(
                f"the lock {self.info.id} for {self.info.scope} in {self.store} was lost: "
                f"{self._lost}; nothing more is deleted",
                hint="check who runs now with `reconcile journal`, then plan again",
            )
        expires = self.info.expires
        if expires is not None and utcnow() >= expires:
            cause = f" (last renewal: {self._last_error})" if self._last_error else ""
            raise LockError(
                f"the lease of lock {self.info.id} for {self.info.scope} in {self.store} ran "
                f"out at {expires.isoformat(timespec='seconds')}{cause}; nothing more is deleted",
                hint="check that the state store is reachable, then plan again",
            )

    def release(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self._lost is None:
            self._release()

    def release_after(self, error: BaseException | None) -> None:
        """Release; if that fails, say that the lock stays and how to remove it, without hiding
        `error` (what went wrong before, and what was sent, is what the user must read)."""
        try:
            self.release()
        except Exception as failed:
            said = str(failed).splitlines()[0] if str(failed) else type(failed).__name__
            note = (
                f"the lock {self.info.id} for {self.info.scope} stays in {self.store}: releasing "
                f"it failed ({said}); once the store answers, run "
                f"`reconcile force-unlock {self.info.id}`"
            )
            if error is None:
                raise LockError(note, hint="check the store's endpoint and region") from failed
            if isinstance(error, ReconcileError):
                error.hint = f"{error.hint}; {note}" if error.hint else note
            else:
                error.add_note(note)

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        self.release_after(error)

    async def __aenter__(self) -> HeldLock:
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        import asyncio

        await asyncio.to_thread(self.release_after, error)


# -- journal records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Versioned:
    """A ledger document and the version to give back for a conditional write."""

    document: dict[str, Any]
    version: str


@dataclass
class Migration:
    copied: int = 0
    already_there: int = 0
    skipped: list[str] = field(default_factory=list)


class Stamper:
    """Stamps each journal record with its time, strictly increasing within this process, and
    names its key: time, apply id, sequence, so that a listing returns records in order."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)
        self._sequence = 0
        self._writer = uuid.uuid4().hex[:8]
        self._mutex = threading.Lock()

    def stamp(self, record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The record's key, and the record with its time."""
        stamped, now, sequence = self._stamped(record)
        at = _time_or_none(stamped["time"]) or now
        return record_key(at, stamped.get("apply_id"), f"{sequence:08d}", self._writer), stamped

    def stamped(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record with its time, for a store whose records have no key (a file's lines):
        the key was half of a stamp's 12 µs, 36,000 times in a large apply."""
        return self._stamped(record)[0]

    def _stamped(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], datetime, int]:
        with self._mutex:
            now = max(utcnow(), self._last + timedelta(microseconds=1))
            self._last = now
            self._sequence += 1
            sequence = self._sequence
        return {"time": now.isoformat(timespec="milliseconds"), **record}, now, sequence


def record_key(at: datetime, apply_id: object, sequence: str, writer: str) -> str:
    apply = quote(apply_id, safe="") if isinstance(apply_id, str) and apply_id else "_"
    return f"{at.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}-{apply}-{sequence}-{writer}.json"


def migrated_key(record: Mapping[str, Any], ordinal: int) -> str:
    """A copied record's key: the same on every run of a migration, so a second run copies
    only what the first did not."""
    at = _time_or_none(record.get("time")) or datetime.fromtimestamp(0, UTC)
    return record_key(at, record.get("apply_id"), f"m{ordinal:08d}", "migrated")


def encode_record(record: Mapping[str, Any]) -> bytes:
    """A journal record as one line of JSON (UTF-8, compact). By orjson, a tenth of the standard
    encoder's time: a large apply writes 36,000 records, half with the deleted object's whole
    record, and the encoding held the GIL the deletes' event loop needs. What orjson refuses
    (integers beyond 64 bits, lone surrogates) `json_text` writes. Times and dataclasses are
    written as their `str`, by either; a platform's `RawRecord` (a delete's receipt) as its
    text where that is orjson's own (parsing it to write it again was 0.8 s of a large apply),
    else as its value."""
    try:
        return orjson.dumps(record, default=_orjson_default, option=_RECORD_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json_text(record, default=_json_default).encode()


def _orjson_default(value: Any) -> Any:
    return value.embedded() if isinstance(value, RawRecord) else str(value)


def _json_default(value: Any) -> Any:
    return value.value() if isinstance(value, RawRecord) else str(value)


_RECORD_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def decode_record(data: bytes) -> dict[str, Any] | None:
    """A record, or None for what is not one (a torn line, a foreign object). Read as the
    standard parser reads it, by strict_json where it can (twice its speed on receipts that
    carry whole platform records; a plan after a large apply reads its 36,000)."""
    try:
        record = strict_json(data)
    except ValueError:
        try:
            record = json.loads(data)  # NaN or Infinity, which strict_json refuses
        except ValueError:
            return None
    return record if isinstance(record, dict) else None


def scope_name(scope: str) -> str:
    """A scope as one file or key name (`fabric:ws/1` -> `fabric%3Aws%2F1`)."""
    if not scope:
        raise StateError("a lock or ledger needs a provider scope, got an empty one")
    return quote(scope, safe="-_.@")


def check_key(store: str, key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise StateError(
            f"{key!r} is not a plan name in this store",
            store=store,
            hint="give a relative name such as plan.json or prod/plan.json",
        )
    return key


# -- the interface ---------------------------------------------------------------------------


class StateBackend(ABC):
    """One store of reconcile's state. Open it with `open_state`; close it (or use `with`)."""

    #: How the store is shown in messages: its URL (and endpoint); never a credential.
    name: str

    @abstractmethod
    def probe(self) -> str:
        """Check that the store keeps its promises (a second create-only write is refused);
        raise `StateError` if not. Returns what was found, in one line. Run once, before the
        store's first write; later calls return the first result."""

    @abstractmethod
    def acquire(self, scope: str, operation: str, apply_id: str | None = None) -> HeldLock:
        """Take the lock of a provider scope, or raise `LockError` naming its holder (a stale
        lock too: only `force_unlock` removes it)."""

    @abstractmethod
    def read_lock(self, scope: str) -> LockInfo | None: ...

    @abstractmethod
    def locks(self) -> list[LockInfo]:
        """Every lock in the store (to find the scope of a lock id)."""

    @abstractmethod
    def force_unlock(self, scope: str, lock_id: str, *, force: bool = False) -> LockInfo:
        """Remove the lock `lock_id` of `scope`: refused when the id differs, and when its
        holder is live (lease unexpired) unless `force`. Returns what was removed."""

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one journal record durably, or raise `StateError`."""
        self.extend([record])

    @abstractmethod
    def extend(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Write journal records durably (each its own object where the store has objects), or
        raise `StateError`: then some may be written, and the caller must send no delete that
        they announce."""

    @abstractmethod
    def records(self, warn: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
        """Every journal record, oldest first. One that is not a record (torn by a crash,
        damaged) is skipped, and `warn` is told where it is."""

    @abstractmethod
    def records_newest_first(
        self, warn: Callable[[str], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The journal records, newest first, read as they are asked for: what only the last
        apply matters to stops early instead of reading a journal that grows with each apply."""

    @abstractmethod
    def put_plan(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_plan(self, key: str) -> bytes: ...

    @abstractmethod
    def get_ledger(self, scope: str) -> Versioned | None: ...

    @abstractmethod
    def put_ledger(self, scope: str, document: Mapping[str, Any], *, version: str | None) -> str:
        """Write the scope's ledger if it is still at `version` (None: if there is none yet);
        otherwise raise `StateConflictError`. Returns the new version."""

    @abstractmethod
    def import_records(self, records: Sequence[tuple[str, dict[str, Any]]]) -> Migration:
        """Copy (key, record) pairs from another store, skipping those already copied."""

    def migrate_from(self, source: StateBackend) -> Migration:
        """Copy the source's journal here; a second run copies only what is new."""
        skipped: list[str] = []
        records = source.records(skipped.append)
        pairs = [(migrated_key(record, n), record) for n, record in enumerate(records)]
        result = self.import_records(pairs)
        result.skipped.extend(skipped)
        return result

    def close(self) -> None:  # noqa: B027 - the local store holds nothing open
        """Release what the store holds open."""

    def __enter__(self) -> StateBackend:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


# -- small helpers ---------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _time_or_none(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
