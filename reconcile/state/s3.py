"""The object-store state: `s3://BUCKET/PREFIX` on any store that speaks the S3 API.

Layout under PREFIX: `locks/SCOPE.json`, `journal/TIME-APPLY-SEQ-WRITER.json` (one create-only
object per record, so nothing is ever read, changed and written back), `ledger/SCOPE.json`, saved
plans by their own key, and `probe/` for the short-lived objects of the probe.

The lock is a create-only write (`If-None-Match: *`); its lease is renewed by overwriting it on
condition that it is still the version this holder wrote (`If-Match` on its ETag); release deletes
it only if it still carries this holder's id (read, compare, delete `If-Match`). A store that lets
a second create-only write through would make all of that a lie, so the store is probed before
its first write and refused if it does.

The client is aiobotocore (botocore's requests and signing, on aiohttp, which reconcile already
uses for the platforms). It runs on an event loop of its own in a daemon thread: the lock's lease
must be renewed while the CLI waits at its confirmation prompt or runs the apply on its own loop,
and a batch of journal records goes out as concurrent writes on that one loop.

Over 450 lines on purpose: one class, `S3State`, whose lock, journal, ledger and probe share
the client, its loop thread and the conditional-write rules above.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from reconcile.errors import LockError
from reconcile.model import json_text
from reconcile.state.base import (
    DEFAULT_LEASE_SECONDS,
    HeldLock,
    LockInfo,
    LockLost,
    Migration,
    S3Location,
    Stamper,
    StateBackend,
    StateConflictError,
    StateError,
    Versioned,
    check_key,
    check_unlock,
    decode_record,
    encode_record,
    held_error,
    new_lock,
    scope_name,
    utcnow,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

T = TypeVar("T")

#: Concurrent reads when listing the journal back.
READ_CONCURRENCY = 16
#: The message the brief of every S3-compatible store that ignores the precondition earns.
IGNORES_IF_NONE_MATCH = "this store ignores If-None-Match; a lock on it is no lock"


class S3Credentials:
    """Keys read from the environment: kept out of every repr, message and log."""

    __slots__ = ("_key", "_secret", "_token")

    def __init__(self, key: str, secret: str, token: str | None) -> None:
        self._key, self._secret, self._token = key, secret, token

    def __repr__(self) -> str:
        return "S3Credentials(<hidden>)"


class S3State(StateBackend):
    def __init__(
        self,
        location: S3Location,
        *,
        endpoint: str | None,
        region: str,
        credentials: S3Credentials,
        credential_names: tuple[str, str],
        addressing_style: str = "auto",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.location = location
        self.endpoint = endpoint
        self.name = f"{location}" + (f" at {endpoint}" if endpoint else "")
        self.lease_seconds = lease_seconds
        self._region = region
        self._credentials = credentials
        self._names = credential_names
        self._addressing = addressing_style
        self._stamper = Stamper()
        self._probed: str | StateError | None = None
        #: Locks taken through this store and not released yet: released when it closes.
        self._held: weakref.WeakSet[HeldLock] = weakref.WeakSet()
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="reconcile-state-s3", daemon=True
        )
        self._thread.start()

    # -- the loop and the client ----------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            work.close()
            raise RuntimeError("S3State methods are not for its own loop")
        if self._loop.is_closed():
            work.close()
            raise StateError("the store was closed", store=self.name)
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _s3(self) -> S3Client:
        if self._client is None:
            config = AioConfig(
                s3={"addressing_style": self._addressing},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=30,
                # Checksums only where S3 requires them: newer botocore adds CRC32 trailers to
                # every upload, which many S3-compatible stores reject.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # The endpoint comes from the [state] table only, never AWS_ENDPOINT_URL.
                ignore_configured_endpoint_urls=True,
            )
            creds = self._credentials
            self._client = await self._exit.enter_async_context(
                get_session().create_client(
                    "s3",
                    endpoint_url=self.endpoint,
                    region_name=self._region,
                    aws_access_key_id=creds._key,
                    aws_secret_access_key=creds._secret,
                    aws_session_token=creds._token,
                    config=config,
                )
            )
        return self._client

    def close(self) -> None:
        if self._loop.is_closed():
            return
        for held in list(self._held):
            held.release()
        with contextlib.suppress(Exception):
            self._run(self._exit.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _key(self, name: str) -> str:
        return f"{self.location.prefix}{name}"

    async def _put(self, operation: str, key: str, body: bytes, **condition: str) -> str:
        """Write one object (on `IfNoneMatch`/`IfMatch` if given); returns its ETag."""
        s3 = await self._s3()
        answer = await self._call(
            operation,
            lambda: s3.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            ),
        )
        return answer["ETag"]

    async def _call(self, operation: str, request: Callable[[], Awaitable[T]]) -> T:
        """Send one request; any failure becomes a `StateError` naming store and operation.
        Conditional-write refusals pass through as `_Refused` for the caller to judge."""
        try:
            return await request()
        except botocore.exceptions.ClientError as error:
            code, status, text = _answer(error)
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise _Refused(code) from None
            if code != "NoSuchBucket" and (status == 404 or code in ("NoSuchKey", "NotFound")):
                raise _Missing from None
            raise StateError(
                f"{code} (HTTP {status}): {text}",
                store=self.name,
                operation=operation,
                hint=self._hint(code, status),
            ) from None
        except (botocore.exceptions.BotoCoreError, aiohttp.ClientError, TimeoutError) as error:
            raise StateError(
                f"no answer from the store ({type(error).__name__})",
                store=self.name,
                operation=operation,
                hint="check the endpoint and the network; nothing more is deleted meanwhile",
            ) from None

    def _hint(self, code: str, status: int | None) -> str:
        ak, sk = self._names
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed"):
            return f"check the keys in the environment variables {ak} and {sk} and the region"
        if code in ("AccessDenied", "Forbidden") or status == 403:
            return (
                f"the keys in {ak}/{sk} need s3:GetObject, s3:PutObject, s3:DeleteObject on "
                f"{self.location.prefix}* and s3:ListBucket on the bucket"
            )
        if code == "NoSuchBucket":
            return f"create the bucket {self.location.bucket} first"
        return "check the store's endpoint and region, and try again"

    # -- the probe ------------------------------------------------------------------------

    def probe(self) -> str:
        return self._run(self._ensure_probed())

    async def _ensure_probed(self) -> str:
        """The probe's result, probing on first use; a store refused once stays refused."""
        if isinstance(self._probed, StateError):
            raise self._probed
        if self._probed is None:
            try:
                self._probed = await self._probe()
            except StateError as error:
                if IGNORES_IF_NONE_MATCH in error.message or "If-Match" in error.message:
                    self._probed = error
                raise
        return self._probed

    async def _probe(self) -> str:
        s3 = await self._s3()
        bucket, key = self.location.bucket, self._key(f"probe/{uuid.uuid4().hex}")
        operation = "probe conditional writes"

        async def put(**condition: str) -> bool:
            try:
                await self._put(operation, key, b"{}", **condition)
            except _Refused:
                return False
            return True

        try:
            await put(IfNoneMatch="*")
            if await put(IfNoneMatch="*"):
                raise StateError(
                    f"{IGNORES_IF_NONE_MATCH}: a second create-only write (If-None-Match: *) "
                    "of the same key succeeded, so two applies could both take the lock; "
                    "nothing was deleted",
                    store=self.name,
                    operation=operation,
                    hint="use a store that honours conditional writes (AWS S3 does), or keep "
                    "the state local",
                )
            if await put(IfMatch='"00000000000000000000000000000000"'):
                raise StateError(
                    "this store ignores If-Match: an overwrite on a stale ETag succeeded, so a "
                    "lease renewal could overwrite another run's lock; nothing was deleted",
                    store=self.name,
                    operation=operation,
                    hint="use a store that honours conditional writes, or keep the state local",
                )
        finally:
            with contextlib.suppress(StateError, _Missing):
                await self._call(operation, lambda: s3.delete_object(Bucket=bucket, Key=key))
        return (
            f"{self.name}: a second create-only write was refused (412) and an overwrite on a "
            "stale ETag too: conditional writes hold"
        )

    # -- lock -----------------------------------------------------------------------------

    async def _get(self, key: str, operation: str) -> tuple[bytes, str] | None:
        s3 = await self._s3()
        bucket = self.location.bucket

        async def get() -> tuple[bytes, str]:
            answer = await s3.get_object(Bucket=bucket, Key=key)
            async with answer["Body"] as body:
                return await body.read(), answer["ETag"]

        try:
            return await self._call(operation, get)
        except _Missing:
            return None

    async def _read_lock(self, scope: str) -> tuple[LockInfo, str] | None:
        found = await self._get(self._key(f"locks/{scope_name(scope)}.json"), "read a lock")
        return None if found is None else (LockInfo.from_json(found[0], scope), found[1])

    def read_lock(self, scope: str) -> LockInfo | None:
        found = self._run(self._read_lock(scope))
        return found[0] if found else None

    def locks(self) -> list[LockInfo]:
        async def all_locks() -> list[LockInfo]:
            keys = await self._list("locks/", "list the locks")
            found = []
            for key in keys:
                got = await self._get(key, "read a lock")
                if got is not None:
                    scope = key.rsplit("/", 1)[-1].removesuffix(".json")
                    found.append(LockInfo.from_json(got[0], scope))
            return found

        return self._run(all_locks())

    def acquire(self, scope: str, operation: str, apply_id: str | None = None) -> HeldLock:
        info = new_lock(scope, operation, apply_id, self.lease_seconds)
        key = self._key(f"locks/{scope_name(scope)}.json")
        etag = self._run(self._create_lock(key, scope, info))
        holder = {"etag": etag}

        async def renew() -> datetime:
            expires = utcnow() + timedelta(seconds=self.lease_seconds)
            body = replace(info, expires=expires).to_json()
            try:
                etag = await self._put("renew the lock's lease", key, body, IfMatch=holder["etag"])
            except (_Refused, _Missing):
                raise LockLost from None
            holder["etag"] = etag
            return expires

        async def release() -> None:
            found = await self._read_lock(scope)
            if found is None or found[0].id != info.id:
                return
            await self._delete_if(key, found[1], "release the lock")

        held = HeldLock(
            self.name,
            info,
            renew=lambda: self._run(renew()),
            release=lambda: self._run(release()),
        )
        self._held.add(held)
        return held

    async def _create_lock(self, key: str, scope: str, info: LockInfo) -> str:
        await self._ensure_probed()
        for _ in range(3):
            try:
                return await self._put("take the lock", key, info.to_json(), IfNoneMatch="*")
            except _Refused:
                found = await self._read_lock(scope)
            if found is None:
                continue  # released between the two requests: try again
            held, etag = found
            if held.id == info.id:
                return etag  # our own write, retried by the client after a lost answer
            raise held_error(self.name, held)
        raise LockError(
            f"the lock for {scope} in {self.name} keeps changing hands",
            hint="another run is starting right now: try again in a minute",
        )

    async def _delete_if(self, key: str, etag: str, operation: str) -> None:
        s3 = await self._s3()
        bucket = self.location.bucket
        try:
            await self._call(
                operation, lambda: s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
            )
        except (_Refused, _Missing):
            return  # changed or gone meanwhile: not ours to delete any more
        except StateError as error:
            if "NotImplemented" not in error.message:
                raise
            # A store without conditional deletes: the id was compared just before.
            with contextlib.suppress(_Missing):
                await self._call(operation, lambda: s3.delete_object(Bucket=bucket, Key=key))

    def force_unlock(self, scope: str, lock_id: str, *, force: bool = False) -> LockInfo:
        async def unlock() -> LockInfo:
            found = await self._read_lock(scope)
            check_unlock(self.name, scope, found[0] if found else None, lock_id, force)
            assert found is not None
            await self._delete_if(
                self._key(f"locks/{scope_name(scope)}.json"), found[1], "force-unlock"
            )
            return found[0]

        return self._run(unlock())

    # -- journal --------------------------------------------------------------------------

    def extend(self, records: Sequence[Mapping[str, Any]]) -> None:
        stamped = [self._stamper.stamp(record) for record in records]
        self._run(self._put_records([(key, encode_record(r)) for key, r in stamped]))

    async def _put_records(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Write each record as a create-only object, all at once; True where written, False
        where the same record was there already. Raises after all have settled if any failed."""
        await self._ensure_probed()

        async def put(name: str, body: bytes) -> bool:
            key = self._key(f"journal/{name}")
            try:
                await self._put("write a journal record", key, body, IfNoneMatch="*")
            except _Refused:
                found = await self._get(key, "read a journal record")
                if found is None or decode_record(found[0]) != decode_record(body):
                    raise StateError(
                        f"the journal key {key} holds another record",
                        store=self.name,
                        operation="write a journal record",
                        hint="two writers collided on one key; report this",
                    ) from None
                return False
            return True

        results = await asyncio.gather(
            *(put(name, body) for name, body in items), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [bool(result) for result in results]

    async def _list(self, under: str, operation: str) -> list[str]:
        s3 = await self._s3()
        bucket, prefix = self.location.bucket, self._key(under)
        keys: list[str] = []
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)

        async def listed() -> None:
            async for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", []) if "Key" in item)

        await self._call(operation, listed)
        return keys

    def records(self, warn: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
        return self._records(warn, newest_first=False)

    def records_newest_first(
        self, warn: Callable[[str], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        return self._records(warn, newest_first=True)

    def _records(
        self, warn: Callable[[str], None] | None, *, newest_first: bool
    ) -> Iterator[dict[str, Any]]:
        # The keys name the records' times, so the listing is in order; the objects are read a
        # batch at a time, as they are asked for.
        keys = self._run(self._list("journal/", "list the journal"))
        if newest_first:
            keys.reverse()
        for start in range(0, len(keys), READ_CONCURRENCY * 4):
            chunk = keys[start : start + READ_CONCURRENCY * 4]
            for key, data in zip(chunk, self._run(self._read_many(chunk)), strict=True):
                record = decode_record(data) if data is not None else None
                if record is not None:
                    yield record
                elif data is not None and warn is not None:
                    warn(f"{self.name}: skipped the journal object {key}: it is not a record")

    async def _read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(key: str) -> bytes | None:
            async with gate:
                found = await self._get(key, "read the journal")
                return found[0] if found else None

        return list(await asyncio.gather(*(read(key) for key in keys)))

    def import_records(self, records: Sequence[tuple[str, dict[str, Any]]]) -> Migration:
        written = self._run(self._put_records([(k, encode_record(r)) for k, r in records]))
        copied = sum(written)
        return Migration(copied=copied, already_there=len(written) - copied)

    # -- saved plans ----------------------------------------------------------------------

    def put_plan(self, key: str, data: bytes) -> None:
        name = self._key(check_key(self.name, key))

        self._run(self._put("save the plan", name, data))

    def get_plan(self, key: str) -> bytes:
        name = self._key(check_key(self.name, key))
        found = self._run(self._get(name, "read a saved plan"))
        if found is None:
            raise StateError(
                f"no saved plan at s3://{self.location.bucket}/{name}",
                store=self.name,
                operation="read a saved plan",
                hint="give the URL that `reconcile plan -o` wrote",
            )
        return found[0]

    # -- first-seen ledger ----------------------------------------------------------------

    def get_ledger(self, scope: str) -> Versioned | None:
        found = self._run(self._get(self._key(f"ledger/{scope_name(scope)}.json"), "read a ledger"))
        if found is None:
            return None
        document = decode_record(found[0])
        if document is None:
            raise StateError(
                f"the ledger of {scope} is not a JSON object",
                store=self.name,
                operation="read a ledger",
                hint="restore it from the bucket's versions, or remove it to start anew",
            )
        return Versioned(document, found[1])

    def put_ledger(self, scope: str, document: Mapping[str, Any], *, version: str | None) -> str:
        key = self._key(f"ledger/{scope_name(scope)}.json")
        body = json_text(dict(document), sort_keys=True).encode()
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}

        async def put() -> str:
            await self._ensure_probed()
            try:
                return await self._put("write a ledger", key, body, **condition)
            except (_Refused, _Missing):
                raise StateConflictError(
                    f"the ledger of {scope} changed since it was read",
                    store=self.name,
                    operation="write a ledger",
                    hint="read it again and redo the change",
                ) from None

        return self._run(put())


class _Refused(Exception):
    """The store refused a conditional write or delete (412, or 409 for a concurrent one)."""


class _Missing(Exception):
    """The object does not exist (404)."""


def _answer(error: botocore.exceptions.ClientError) -> tuple[str, int | None, str]:
    """The error code, HTTP status and message of a store's answer, made safe to show."""
    response: Mapping[str, Any] = error.response
    details = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(details.get("Code") or "Error")
    text = str(details.get("Message") or "")
    clean = "".join(ch if ch.isprintable() else "?" for ch in f"{code}: {text}"[:200])
    return (
        clean.partition(": ")[0],
        status if isinstance(status, int) else None,
        clean.partition(": ")[2],
    )
