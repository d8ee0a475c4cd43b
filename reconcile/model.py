"""Provider-neutral records of live state.

A provider lists a platform scope (a Fabric workspace, a Qianfan account) into one `Snapshot`: its
models, their versions and the inference services that use them. Records are frozen; `raw` keeps
every field the platform returned so that a delete's journal receipt could re-register the object.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceUse(Record):
    """An inference service that serves a model (and, where the platform says, one version of it).

    Only services whose status is not a terminal "deleted" one are kept by providers: those are
    the ones that make a version undeletable.
    """

    id: str
    name: str
    status: str
    model_id: str
    version_id: str | None = None


class RawRecord:
    """An object exactly as the platform returned it, kept as compact JSON text.

    A listing holds 100k of them and a plan carries those it deletes: as text they take a
    quarter of the memory of parsed objects, a plan shares them with the listing, and only the
    few that reach a journal receipt or a plan file are parsed again (`value()`). In a pydantic
    record it validates from a JSON object (a plan file) or a `RawRecord`, and serializes as the
    object. Two records are equal when their texts are.
    """

    __slots__ = ("_joined", "_orjson", "_text")
    _text: str
    #: A record made by `with_list`: (record, key, items), joined into text only when read.
    _joined: tuple[RawRecord, str, tuple[RawRecord, ...]] | None
    #: The text is orjson's own, which orjson reads back exactly (see `value`).
    _orjson: bool

    def __init__(self, text: str, *, _orjson: bool = False) -> None:
        object.__setattr__(self, "_text", text)
        object.__setattr__(self, "_joined", None)
        object.__setattr__(self, "_orjson", _orjson)

    @classmethod
    def of(cls, value: dict[str, Any]) -> RawRecord:
        try:
            # Decoded: orjson's bytes keep the 4 KiB buffer they were written in; a str is sized.
            return cls(orjson.dumps(value).decode(), _orjson=True)
        except TypeError:  # orjson.JSONEncodeError: integers beyond 64 bits, lone surrogates
            return cls(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    @property
    def text(self) -> str:
        if self._joined is None:
            return self._text
        record, key, items = self._joined
        member = f"{json.dumps(key)}:[{','.join(item.text for item in items)}]"
        head = record.text[:-1].rstrip()
        return f"{head}{',' if head != '{' else ''}{member}}}"

    def value(self) -> dict[str, Any]:
        # What orjson wrote it reads back as it was (its integers fit in 64 bits), 1.6 times
        # faster than the standard parser, which a plan's digest pays for each delete. Other
        # texts are the standard parser's: orjson would read integers beyond 64 bits as floats.
        loads = orjson.loads if self._from_orjson() else json.loads
        parsed: dict[str, Any] = loads(self.text)
        return parsed

    def _from_orjson(self) -> bool:
        return all(part._orjson for part in self.parts())

    def embedded(self) -> orjson.Fragment | dict[str, Any]:
        """The record for orjson to write inside a document: its text as it is where that text
        is orjson's own (which reads back as this very text: a plan file's record is made
        again by `of` from what it reads, and its digest must come out the same), else its
        value, written again."""
        return orjson.Fragment(self.text) if self._from_orjson() else self.value()

    def with_list(self, key: str, items: Iterable[RawRecord]) -> RawRecord:
        """This object with `key` set to the list of `items`, nothing parsed.

        The text is joined when read, not kept: a plan's 8,000 whole-model deletes would
        otherwise hold a second copy of their versions' records. The member is appended; an
        object that may hold `key` already is made parsed instead, as `{**value, key: items}`:
        a parser reads duplicate names as that (one member, in its first place), and a record
        must read back as its text (see `embedded`)."""
        items = tuple(items)
        if f"{json.dumps(key)}:" in self.text:  # a member, or only words in a string
            return RawRecord.of({**self.value(), key: [item.value() for item in items]})
        joined = RawRecord.__new__(RawRecord)
        object.__setattr__(joined, "_text", "")
        object.__setattr__(joined, "_joined", (self, key, items))
        object.__setattr__(joined, "_orjson", False)  # `_from_orjson` asks its parts
        return joined

    def parts(self) -> Iterator[RawRecord]:
        """The records this one is made of: itself, or those `with_list` joined."""
        if self._joined is None:
            yield self
            return
        record, _, items = self._joined
        yield from record.parts()
        for item in items:
            yield from item.parts()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a RawRecord is immutable")

    def __reduce__(self) -> tuple[Callable[[str, bool], RawRecord], tuple[str, bool]]:
        # Whether the text is orjson's own goes along: a plan digests such a record as its text.
        return _restored, (self.text, self._from_orjson())

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, RawRecord):
            return False
        if self._joined is not None and other._joined is not None:
            # Joined alike from equal parts, the texts are equal without being joined (an
            # apply compares 8,000 whole-model records, whose parts are the very same records
            # when they come from the same listing: `KnownRecords`).
            (record, key, items), (other_record, other_key, other_items) = (
                self._joined,
                other._joined,
            )
            if (
                key == other_key
                and len(items) == len(other_items)
                and record == other_record
                and all(map(operator.eq, items, other_items))
            ):
                return True
        return self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        text = self.text
        return f"RawRecord({text[:60]!r}{'...' if len(text) > 60 else ''})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.dict_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda record: record.value(), return_schema=core_schema.dict_schema()
            ),
        )

    @classmethod
    def _validate(cls, value: Any) -> RawRecord:
        if isinstance(value, RawRecord):
            return value
        if isinstance(value, dict):
            return cls.of(value)
        raise ValueError("must be a JSON object")


def _restored(text: str, from_orjson: bool) -> RawRecord:
    """A copied or unpickled `RawRecord`."""
    return RawRecord(text, _orjson=from_orjson)


#: The record of an object the platform said nothing more about.
EMPTY_RECORD = RawRecord("{}")

#: How a listing makes each object's `raw` record from what the platform returned.
MakeRecord = Callable[[dict[str, Any]], RawRecord]


def no_record(value: dict[str, Any]) -> RawRecord:
    """A listing that only tells what exists (the applier's check of outcomes) keeps no record."""
    return EMPTY_RECORD


class KnownRecords:
    """Makes a listing's records, giving back a record already held wherever its text is the
    same: the applier lists again while the plan it applies holds the records of its deletes
    (80,000 at scale), and a second copy of each was 60 MB at the top of a large apply. The
    record given back is equal to the one made (same text), so nothing compared changes."""

    def __init__(self, held: Iterable[RawRecord]) -> None:
        self._held = {part.text: part for record in held for part in record.parts()}

    def __call__(self, value: dict[str, Any]) -> RawRecord:
        made = RawRecord.of(value)
        return self._held.get(made.text, made)


class LiveVersion(Record):
    id: str
    name: str
    model_id: str
    #: When the platform created it; None when the platform did not say (sorted as oldest).
    created: datetime | None = None
    #: Attributes a manifest may declare and that are compared for drift
    #: (`description`, `base_model_type`, `model_path`); absent keys were not reported.
    attributes: dict[str, str | None] = {}
    #: A platform preset (PUBLIC on Fabric, System/PlatformPreset on Qianfan): never in scope.
    preset: bool = False
    #: Everything the platform returned for this version, as it returned it.
    raw: RawRecord = EMPTY_RECORD

    @classmethod
    def trusted(
        cls,
        *,
        id: str,
        name: str,
        model_id: str,
        created: datetime | None,
        attributes: dict[str, str | None],
        preset: bool,
        raw: RawRecord,
    ) -> LiveVersion:
        """A version from values a provider's shape checks have validated (see `trusted`)."""
        values = {
            "id": id,
            "name": name,
            "model_id": model_id,
            "created": created,
            "attributes": attributes,
            "preset": preset,
            "raw": raw,
        }
        return trusted(cls, values)


class LiveModel(Record):
    id: str
    name: str
    created: datetime | None = None
    attributes: dict[str, str | None] = {}
    preset: bool = False
    versions: tuple[LiveVersion, ...] = ()
    #: Everything the platform returned for this model (without its versions).
    raw: RawRecord = EMPTY_RECORD

    @classmethod
    def trusted(
        cls,
        *,
        id: str,
        name: str,
        created: datetime | None,
        attributes: dict[str, str | None],
        preset: bool,
        versions: tuple[LiveVersion, ...],
        raw: RawRecord,
    ) -> LiveModel:
        """A model from values a provider's shape checks have validated (see `trusted`)."""
        values = {
            "id": id,
            "name": name,
            "created": created,
            "attributes": attributes,
            "preset": preset,
            "versions": versions,
            "raw": raw,
        }
        return trusted(cls, values)


R = TypeVar("R", bound=BaseModel)
#: One fields set per record class, shared by every record `trusted` makes.
_FIELD_SETS: dict[type[BaseModel], set[str]] = {}


def trusted(cls: type[R], values: dict[str, Any]) -> R:
    """`cls.model_construct(**values)` for already-checked values of every field, in order.

    A listing builds 100k records from values the provider's shape checks have validated, and a
    plan 30k changes from the planner's own typed values: pydantic's validation, then its
    per-field Python loop in `model_construct` (aliases, defaults), were a tenth of a listing's
    CPU. This sets the same four attributes `model_construct` sets, and all records of a class
    share one fields set (0.7 KB each otherwise; `model_copy` copies it before changing it).
    Callers are typed constructors (`LiveVersion.trusted`...) that name every field; the tests
    hold their records equal to validated ones in every pydantic operation the code uses.
    """
    fields_set = _FIELD_SETS.get(cls)
    if fields_set is None:
        fields_set = _FIELD_SETS[cls] = set(cls.model_fields)
    record = cls.__new__(cls)
    object.__setattr__(record, "__dict__", values)
    object.__setattr__(record, "__pydantic_fields_set__", fields_set)
    object.__setattr__(record, "__pydantic_extra__", None)
    object.__setattr__(record, "__pydantic_private__", None)
    return record


def copied(record: R, **update: Any) -> R:
    """`record.model_copy(update=update)` for already-checked values, made as `trusted` makes
    records: `model_copy` copies the record's fields set, 0.7 KB for each of a listing's
    10,000 models given their versions."""
    return trusted(type(record), {**record.__dict__, **update})


class FieldChange(Record):
    """One declared attribute whose live value differs."""

    field: str
    declared: Any
    live: Any


class Snapshot(Record):
    """All live objects of one provider scope, listed completely (or not at all)."""

    provider: str
    provider_type: str
    #: Human words for where these objects live, e.g. "workspace ws-7f3a".
    location: str
    models: tuple[LiveModel, ...]
    services: tuple[ServiceUse, ...] = ()

    def uses(self) -> Uses:
        """Which services make which objects undeletable."""
        by_version: dict[str, list[ServiceUse]] = {}
        by_model: dict[str, list[ServiceUse]] = {}
        for service in self.services:
            by_model.setdefault(service.model_id, []).append(service)
            if service.version_id is not None:
                by_version.setdefault(service.version_id, []).append(service)
        return Uses(by_version=by_version, by_model=by_model)


class Uses(Record):
    #: Version id -> the services that serve that version.
    by_version: dict[str, list[ServiceUse]]
    #: Model id -> every service that serves the model (any of its versions, or the model itself).
    by_model: dict[str, list[ServiceUse]]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
_ORJSON_CANONICAL = orjson.OPT_SORT_KEYS


def _canonical(value: Any, parsed: Callable[[], Any] | None = None) -> bytes:
    # orjson encodes a plan's 50k states ten times faster than the standard library; what it
    # refuses (integers beyond 64 bits in a platform record) the standard encoder takes. Either
    # way the same value always gives the same bytes, which is all a digest needs. A value
    # whose records are embedded as their texts (`RawRecord.embedded`), which only orjson
    # writes, says how to make it with its records parsed (`parsed`), for the standard encoder.
    try:
        return orjson.dumps(value, option=_ORJSON_CANONICAL, default=str)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        if parsed is not None:
            return _canonical(parsed())
        return _CANONICAL.encode(value).encode()


def json_text(value: Any, **options: Any) -> str:
    """`value` as a JSON document (a plan file, a report, a state document), every script as it
    is, unless it holds a lone surrogate: a platform's JSON may (an escaped "\\ud800", read as it
    was), and UTF-8 has none, so then the whole text is in ASCII escapes. Either way the text
    encodes as UTF-8 and reads back as `value`. `options` are `json.dumps`'s."""
    text = json.dumps(value, ensure_ascii=False, **options)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, **options)
    return text


def strict_json(data: str | bytes) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity, which Python's parser takes, are refused (a
    record holding them could not be written back as it was read).

    What cannot be kept as it was sent is refused too (`Unkeepable`): a number beyond a float's
    range (1e400), read as infinity, which a record's text then wrote as null (orjson) or
    Infinity (not JSON); an integer of more than 4,300 digits, which Python will not convert
    (`NumberOutOfRange`); values nested deeper than 1,024 levels (`NestedTooDeep`).

    Read by orjson, twice the standard parser's speed on a listing's 10,000 pages, where
    it reads the value exactly; the rest is the standard parser's: a number of 19 digits or
    more (orjson would read a float) and what orjson refuses (a lone surrogate, 1e400), so the
    same text always gives the same value or the same refusal, whichever parser read it."""
    if not _may_hold_a_long_integer(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(
            data, parse_constant=_refuse_constant, parse_float=_finite, parse_int=_integer
        )
    except RecursionError:  # orjson refuses beyond 1,024 levels; the standard parser crashed
        raise NestedTooDeep("values are nested too deeply to read") from None


def _may_hold_a_long_integer(data: str | bytes) -> bool:
    """Whether a JSON number of 19 digits or more may start in `data` (beyond 64 bits, orjson
    reads integers as floats). A number starts the text or follows "[", ":" or "," (whitespace
    aside), its digits after an optional "-". With whitespace dropped, digits made zeros and
    those four characters made ":" by one table, that is one byte string, found at memchr
    speed; a string that happens to hold it only costs the standard parser's time. (A regular
    expression scanning for numbers cost more than parsing the page, and a Python loop over digit
    runs nearly as much: the records carry 32-digit ids.)"""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # structure and digits are ASCII either way
    folded = b":" + data.translate(_FOLD, b" \t\r\n")  # the start is a number's place too
    return _LONG_NUMBER in folded


_FOLD = bytes.maketrans(b"123456789[,-", b"000000000:::")
_LONG_NUMBER = b":" + b"0" * 19


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class Unkeepable(ValueError):
    """JSON, but not as reconcile can keep it: a number it cannot hold, or values nested deeper
    than it reads."""


class NumberOutOfRange(Unkeepable):
    """A number that cannot be kept as it was sent: beyond a float's range, or an integer of
    more digits than Python converts (`sys.get_int_max_str_digits`, 4,300)."""


class NestedTooDeep(Unkeepable):
    """Arrays or objects nested deeper than the parsers read (orjson: 1,024 levels)."""


def _finite(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise NumberOutOfRange(f"the number {_shown(text)} is beyond the range of a float")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # too many digits: Python would neither read nor write it
        raise NumberOutOfRange(
            f"the number {_shown(text)} has {len(text.lstrip('-'))} digits, more than "
            f"reconcile reads ({sys.get_int_max_str_digits()})"
        ) from None


def _shown(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:37]}..."


_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite, parse_int=_integer
)
_SPACE = re.compile(r"[ \t\n\r]*")


def strict_json_object(text: str, member: str, each: Callable[[Any, int], Any]) -> Any:
    """`strict_json(text)` for a document that is an object whose array `member` is long (a
    plan's 30,000 changes): each item of it goes through `each(item, index)` as soon as it is
    read, and what that returns takes its place, so the document is never held parsed whole
    (a large plan's changes with their records were 250 MB parsed, beside the 93 MB text).

    The values and the refusals (ValueError) are strict_json's: items are read by strict_json
    where the layout plan files are written in tells where one ends, and everything else by
    the standard parser that strict_json falls back on. A document that is not an object is
    strict_json's to read. Of a member named twice, the last is kept, as any JSON parser does,
    but the items of each went through `each`."""
    try:
        return _strict_json_object(text, member, each)
    except RecursionError:
        raise NestedTooDeep("values are nested too deeply to read") from None


def _strict_json_object(text: str, member: str, each: Callable[[Any, int], Any]) -> Any:
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return strict_json(text)
    document: dict[str, Any] = {}
    at = _skip(text, at + 1)
    closed = text.startswith("}", at)
    while not closed:  # a member, then "," or "}"
        key, at = _DECODER.raw_decode(text, at)
        if not isinstance(key, str):
            raise ValueError(f"expected a member name at character {at}")
        at = _skip(text, at)
        if not text.startswith(":", at):
            raise ValueError(f"expected ':' at character {at}")
        at = _skip(text, at + 1)
        if key == member and text.startswith("[", at):
            document[key], at = _items(text, at, each)
        else:
            document[key], at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        closed = text.startswith("}", at)
        if not closed and not text.startswith(",", at):
            raise ValueError(f"expected ',' or '}}' at character {at}")
        if not closed:
            at = _skip(text, at + 1)
    at = _skip(text, at + 1)  # past the "}"
    if at < len(text):
        raise ValueError(f"extra data at character {at}")
    return document


def _skip(text: str, at: int) -> int:
    match = _SPACE.match(text, at)
    return match.end() if match else at


def _items(text: str, at: int, each: Callable[[Any, int], Any]) -> tuple[list[Any], int]:
    """The array at `at`, its items through `each`; and where it ends."""
    items: list[Any] = []
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return items, at + 1
    by_layout = True
    while True:
        read = _by_layout(text, at) if by_layout else None
        if read is None:
            # Not in the layout plan files are written in: the standard parser reads the rest
            # (trying the layout on each item could look far ahead for an end, item after item).
            by_layout = False
            read = _DECODER.raw_decode(text, at)
        item, at = read
        items.append(each(item, len(items)))
        at = _skip(text, at)
        if text.startswith("]", at):
            return items, at + 1
        if not text.startswith(",", at):
            raise ValueError(f"expected ',' or ']' at character {at}")
        at = _skip(text, at + 1)


#: How a change of a plan file ends: its closing brace alone on a line, four spaces in.
_ITEM_END = "\n    }"


def _by_layout(text: str, at: int) -> tuple[Any, int] | None:
    """The object at `at` and where it ends, read by strict_json (at orjson's speed) up to the
    next `_ITEM_END`; None when that stretch is not one value. A JSON value has one extent: if
    the stretch reads as one value, it is this one, whatever the layout."""
    if not text.startswith("{", at):
        return None
    end = text.find(_ITEM_END, at)
    if end < 0:
        return None
    end += len(_ITEM_END)
    try:
        return strict_json(text[at:end]), end
    except ValueError:
        return None


def digest(value: Any, parsed: Callable[[], Any] | None = None) -> str:
    """sha256 of the canonical JSON of `value`, as `sha256:<hex>`. A value may embed records
    as their texts (`RawRecord.embedded`) rather than have them parsed and encoded again; where
    orjson refuses it (a lone surrogate in a name), `parsed()` is digested instead, the same
    value with its records parsed. Either way a value saved and read back digests the same."""
    return "sha256:" + hashlib.sha256(_canonical(value, parsed)).hexdigest()


def digest_each(values: Iterable[Any]) -> tuple[list[str], str]:
    """The digest of each of `values`, and of the list of them, encoding each value once and
    never the whole list: a scope's 10,000 model states (100,000 versions) would otherwise be
    held at once and encoded as one 15 MB document. The list's digest is `digest(list(values))`
    (its canonical JSON is "[", the values' joined by ",", "]") unless a value needs the standard
    encoder (see `_canonical`); either way the same values always give the same digests."""
    whole = hashlib.sha256(b"[")
    each = []
    for index, value in enumerate(values):
        encoded = _canonical(value)
        if index:
            whole.update(b",")
        whole.update(encoded)
        each.append("sha256:" + hashlib.sha256(encoded).hexdigest())
    whole.update(b"]")
    return each, "sha256:" + whole.hexdigest()


def version_state(version: LiveVersion, uses: Uses) -> dict[str, Any]:
    """What about a version, if it changed, makes a plan that deletes it stale: a rename, other
    attributes, a service that started using it (or its whole model)."""
    by_model = uses.by_model.get(version.model_id)
    by_version = uses.by_version.get(version.id)
    used_by: list[str] = []
    if by_model or by_version:  # most versions are used by nothing: skip the work
        services = (by_version or []) + [s for s in by_model or [] if s.version_id is None]
        used_by = sorted(service.id for service in services)
    return {
        "id": version.id,
        "name": version.name,
        "preset": version.preset,
        "attributes": version.attributes,
        "used_by": used_by,
    }


def model_state(model: LiveModel, uses: Uses) -> dict[str, Any]:
    """What about a model, if it changed, makes a plan that deletes it stale: a version added or
    removed, a renamed model, a service that started using it."""
    return {
        "id": model.id,
        "name": model.name,
        "preset": model.preset,
        "attributes": model.attributes,
        "used_by": sorted(service.id for service in uses.by_model.get(model.id, [])),
        # Sorted: platforms promise no listing order, and the digest must not depend on one.
        "versions": [
            version_state(version, uses) for version in sorted(model.versions, key=lambda v: v.id)
        ],
    }


#: How the characters that `printable` escapes are written: the usual escapes for the common ones.
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` (a name, id or message from a platform) safe to show on one line of a terminal or a
    page: every character that is not printable (controls such as a newline or the ESC of a
    terminal sequence, C1 controls, bidi overrides and other format characters, separators other
    than the space) is written as a visible escape (`\\n`, `\\x1b`, `\\u202e`); the rest, any
    script included, is shown as it is. The one escaping function of every renderer."""
    if text.isprintable():  # the common case, decided in C
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
