"""Live records: `RawRecord` keeps the platform's JSON exactly, as text; digests are canonical."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reconcile import model
from reconcile.errors import PlanFileError
from reconcile.model import (
    EMPTY_RECORD,
    LiveModel,
    LiveVersion,
    NestedTooDeep,
    NumberOutOfRange,
    RawRecord,
    copied,
    digest,
    digest_each,
    strict_json,
    strict_json_object,
)
from reconcile.plan import Action, Change, Kind, Plan, Reason

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=5)


@given(json_objects)
def test_a_raw_record_gives_back_exactly_what_it_was_given(value: dict[str, Any]) -> None:
    record = RawRecord.of(value)
    assert record.value() == value
    # Exactly: an integer stays an integer (== would take 2**70 for 2.0**70), at any size.
    assert json.dumps(record.value()) == json.dumps(value)
    # Integers beyond 64 bits survive too (orjson refuses them; the standard encoder takes them).
    assert json.loads(record.text) == value


@given(json_objects, st.lists(json_objects, max_size=3))
def test_with_list_is_the_object_with_that_member_set(
    value: dict[str, Any], items: list[dict[str, Any]]
) -> None:
    joined = RawRecord.of(value).with_list("versions", [RawRecord.of(item) for item in items])
    assert joined.value() == {**value, "versions": items}
    assert json.dumps(joined.value()) == json.dumps({**value, "versions": items})


@given(
    json_objects,
    st.lists(json_objects, max_size=3),
    st.sampled_from([{}, {"versions": [1]}, {"a": {"versions": 2}}]),
)
def test_a_record_embedded_as_its_text_reads_back_as_that_text(
    value: dict[str, Any], items: list[dict[str, Any]], member: dict[str, Any]
) -> None:
    """A plan's digest covers each record as its text where `embedded` gives it: that text,
    written to a plan file and made again by `of` from what is read, must be the same text,
    a joined record's too, and one that held the joined member already."""
    record = RawRecord.of({**value, **member})
    for made in (record, record.with_list("versions", [RawRecord.of(item) for item in items])):
        embedded = made.embedded()
        if isinstance(embedded, orjson.Fragment):
            assert RawRecord.of(strict_json(made.text)).text == made.text
            assert orjson.dumps({"before": embedded}) == b'{"before":' + made.text.encode() + b"}"
        else:
            assert embedded == made.value()
        assert made.value() == {
            **value,
            **member,
            **({"versions": items} if made is not record else {}),
        }


@given(
    json_objects,
    st.lists(json_objects, max_size=3),
    json_objects,
    st.lists(json_objects, max_size=3),
)
def test_joined_records_are_equal_exactly_when_their_texts_are(
    value: dict[str, Any],
    items: list[dict[str, Any]],
    other_value: dict[str, Any],
    other_items: list[dict[str, Any]],
) -> None:
    """Two joined records compare by their parts when those agree, without joining their
    texts; whatever the parts, equality is still that of the texts (a joined record against
    the same object read back plain, or joined from other parts)."""

    def joined(record: dict[str, Any], members: list[dict[str, Any]]) -> RawRecord:
        return RawRecord.of(record).with_list("versions", [RawRecord.of(m) for m in members])

    pairs = [
        (joined(value, items), joined(value, items)),
        (joined(value, items), RawRecord.of(strict_json(joined(value, items).text))),
        (joined(value, items), joined(other_value, other_items)),
        (joined(value, items), joined(value, items[:-1])),
    ]
    for one, other in pairs:
        assert (one == other) == (other == one) == (one.text == other.text)


def test_with_list_on_an_empty_object_and_over_an_existing_member() -> None:
    one = RawRecord.of({"id": "v1"})
    assert EMPTY_RECORD.with_list("versions", [one]).value() == {"versions": [{"id": "v1"}]}
    assert EMPTY_RECORD.with_list("versions", []).value() == {"versions": []}
    stale = RawRecord.of({"id": "m", "versions": ["old"]})
    assert stale.with_list("versions", [one]).value() == {"id": "m", "versions": [{"id": "v1"}]}


def _change(before: RawRecord) -> Change:
    return Change(
        address="fabric.p.model.m",
        provider="p",
        kind=Kind.MODEL,
        id="m1",
        name="m",
        actions=(Action.DELETE,),
        action_reason=Reason.NOT_IN_MANIFEST,
        detail="not declared",
        before=before,
    )


def _digest_of_change(before: RawRecord) -> str:
    """What a plan's digest covers of a change (`Plan.compute_digest`)."""
    return digest(_change(before).model_dump(mode="json"))


def test_a_changes_digest_ignores_the_records_key_order_and_spacing_but_not_values() -> None:
    a = RawRecord('{"id": "m1", "n": 1, "big": 123456789012345678901234567890}')
    b = RawRecord('{"n":1,"big":123456789012345678901234567890,"id":"m1"}')
    assert _digest_of_change(a) == _digest_of_change(b)
    changed = RawRecord('{"n":2,"big":123456789012345678901234567890,"id":"m1"}')
    assert _digest_of_change(a) != _digest_of_change(changed)
    # Beyond 64 bits a float is not the integer, nor is the next integer.
    exact = RawRecord('{"size":123456789012345678901234567890}')
    for other in ('{"size":1.2345678901234568e+29}', '{"size":123456789012345678901234567891}'):
        assert _digest_of_change(exact) != _digest_of_change(RawRecord(other))


@given(st.lists(json_objects, max_size=4))
def test_digest_each_is_each_digest_and_the_digest_of_the_list(values: list[Any]) -> None:
    each, whole = digest_each(iter(values))
    assert each == [digest(value) for value in values]
    if all(_orjson_encodes(value) for value in values):
        assert whole == digest(values)
    # Whatever the encoder, the list's digest depends on every value and on their order.
    assert digest_each([*values, {"x": 1}])[1] != whole
    if each != each[::-1]:
        assert digest_each(values[::-1])[1] != whole


def _orjson_encodes(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def test_strict_json_refuses_what_json_does_not_have() -> None:
    assert strict_json('{"a": [1.5, null]}') == {"a": [1.5, None]}
    for text in ('{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}'):
        with pytest.raises(ValueError, match="is not a JSON value"):
            strict_json(text)


@pytest.mark.parametrize(
    ("number", "said"),
    [
        ("1e400", "is beyond the range of a float"),
        ("-1e400", "is beyond the range of a float"),
        ("1.7976931348623159e308", "is beyond the range of a float"),
        ("9" * 400 + ".5", "is beyond the range of a float"),
        ("1" * 5000, "has 5000 digits, more than reconcile reads"),
        ("-" + "7" * 4301, "has 4301 digits"),
    ],
)
@pytest.mark.parametrize("beside", ["", '"n": 123456789012345678901234567890, '])
def test_strict_json_refuses_a_number_it_cannot_keep(number: str, said: str, beside: str) -> None:
    """Read as infinity, a number beyond a float's range was written back by a record as null
    (orjson) or, beside an integer beyond 64 bits (the standard encoder), as Infinity, which
    is not JSON: a receipt or a plan file that did not say what the platform had sent. An
    integer of more digits than Python converts failed as "not JSON". Both are refused as
    such, by both parsers and by the plan file's reader."""
    text = f'{{{beside}"a": [{number}]}}'
    with pytest.raises(NumberOutOfRange, match=said):
        strict_json(text)
    with pytest.raises(NumberOutOfRange):
        strict_json_object(f'{{"changes": [{text}]}}', "changes", lambda item, index: item)
    assert strict_json('{"a": [1e308, -1e-400]}') == {"a": [1e308, -0.0]}  # rounded, kept


@pytest.mark.parametrize("depth", [1_100, 5_000, 100_000])
@pytest.mark.parametrize("beside", ["", '"n": 123456789012345678901234567890, '])
def test_values_nested_too_deeply_are_refused_not_a_crash(depth: int, beside: str) -> None:
    """orjson refuses beyond 1,024 levels, and the standard parser it falls back on crashed
    (RecursionError): a plan file or a platform's page so nested failed as a bug. Refused."""
    nested = "[" * depth + "]" * depth
    text = f'{{{beside}"a": {nested}}}'
    with pytest.raises(NestedTooDeep, match="nested too deeply"):
        strict_json(text)
    for document in (text, f'{{"changes": [{text}]}}', f'{{"other": {nested}, "changes": []}}'):
        with pytest.raises(NestedTooDeep):
            strict_json_object(document, "changes", lambda item, index: item)


@given(json_values, st.sampled_from([(",", ":"), (", ", ": "), (",\n", " :\t")]))
def test_strict_json_reads_every_text_as_the_standard_parser_does(
    value: object, separators: tuple[str, str]
) -> None:
    """orjson reads most texts, the standard parser the rest (long integers, lone surrogates):
    whichever did, the value is the same, each number of the same type."""
    for text in (json.dumps(value, separators=separators), json.dumps(value, ensure_ascii=False)):
        for data in (text, text.encode("utf-8", "surrogatepass")):
            expected = json.loads(data)
            got = strict_json(data)
            assert repr(got) == repr(expected)


def test_strict_json_keeps_integers_beyond_64_bits_exact() -> None:
    for text in (
        "123456789012345678901234",
        '{"a": -99999999999999999999}',
        "[1,\n 2e3, 1" + "0" * 30 + "]",
    ):
        assert repr(strict_json(text)) == repr(json.loads(text))
        assert repr(strict_json(text.encode())) == repr(json.loads(text))
    assert strict_json('{"a": "\\ud800"}') == {
        "a": "\ud800"
    }  # orjson refuses; the standard parser reads


def _layouts(value: object) -> list[str]:
    """`value` as JSON in the layouts a plan file may come in: as reconcile writes it (its items
    four spaces in), compact, indented by 2 and by 4 (as jq or an editor would write it), and
    with the items' closing braces where reconcile puts them but inside nested objects too."""
    layouts = [
        json.dumps(value),
        json.dumps(value, separators=(",", ":")),
        json.dumps(value, indent=2),
        json.dumps(value, indent=4),
        json.dumps(value, indent=2, ensure_ascii=False),
    ]
    # Every object's closing brace alone on a line four spaces in, whatever its depth.
    layouts.append(json.dumps(value, indent=2).replace("\n" + " " * 6 + "}", "\n    }"))
    return layouts


documents = st.fixed_dictionaries(
    {
        "items": st.lists(
            json_values | st.dictionaries(st.text(max_size=5), json_values), max_size=4
        )
    },
    optional={"head": json_values, "tail": json_values},
)


def _seen(seen: list[tuple[int, Any]], item: Any, index: int) -> Any:
    seen.append((index, item))
    return item


@given(documents)
def test_an_object_read_item_by_item_is_what_strict_json_reads(document: dict[str, Any]) -> None:
    """Each item of the long member goes through `each` as it is read, and the document read is
    strict_json's, each number of the same type, in every layout a plan file may come in."""
    for text in _layouts(document):
        seen: list[tuple[int, Any]] = []
        got = strict_json_object(
            text, "items", lambda item, index, seen=seen: _seen(seen, item, index)
        )
        assert repr(got) == repr(strict_json(text))
        assert [index for index, _ in seen] == list(range(len(document["items"])))
        assert repr([item for _, item in seen]) == repr(strict_json(text)["items"])


def test_an_object_read_item_by_item_refuses_what_strict_json_refuses() -> None:
    for text in (
        '{"items": [{"a": NaN}]}',
        '{"items": [1, 2,]}',
        '{"items": [1 2]}',
        '{"items": [{"a": 1}\n    }]}',
        '{"items": [], }',
        '{"items": []} []',
        '{"items": [],\n "b": Infinity}',
        "{1: []}",
        '{"items" []}',
        '{"items": [{"a": "\n    }"}]}',  # a raw newline in a string
        '{"items": [',
    ):
        with pytest.raises(ValueError):
            strict_json(text)
        with pytest.raises(ValueError):
            strict_json_object(text, "items", lambda item, index: item)
    for text in ("[1, 2]", '"items"', "  {}  "):
        assert strict_json_object(text, "items", lambda item, index: 0) == strict_json(text)


def test_items_in_another_layout_are_looked_ahead_for_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compact items, and the layout's end of a change only far after them: the look ahead for
    it (a copy of the text up to there) is tried once, not once per item."""
    slices: list[int] = []
    real = model.strict_json

    def counting(data: str | bytes) -> Any:
        slices.append(len(data))
        return real(data)

    monkeypatch.setattr(model, "strict_json", counting)
    items = [{"n": n} for n in range(2000)]
    text = json.dumps({"items": items, "tail": {"a": {"b": 1}}}).replace("}}}", "}\n    }}")
    assert strict_json_object(text, "items", lambda item, index: item)["items"] == items
    assert len(slices) == 1


def test_items_that_hold_the_end_of_a_change_inside_them_are_read_whole() -> None:
    """A string holding the characters of the layout's end of a change (escaped), and nested
    objects closed four spaces in, do not cut an item short."""
    item = {"a": {"b": {"c": "\n    }"}}, "d": [{"e": 1}]}
    text = json.dumps({"items": [item, item]}, indent=2).replace("\n      }", "\n    }")
    got = strict_json_object(text, "items", lambda value, index: value)
    assert got == {"items": [item, item]}


def test_a_raw_record_is_immutable_and_survives_copies_and_pickles() -> None:
    record = RawRecord.of({"id": "m1"})
    with pytest.raises(AttributeError):
        record.text = "{}"  # type: ignore[misc]
    for clone in (copy.deepcopy(record), pickle.loads(pickle.dumps(record))):
        assert clone == record and clone.text == record.text
    # A copy digests as the original does: as its text where that is orjson's own, else parsed.
    for original in (record, RawRecord.of({"n": 2**70}), record.with_list("v", [record])):
        for clone in (copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
            assert _change(clone).digest() == _change(original).digest()
            assert type(clone.embedded()) is type(original.embedded())


def test_records_validate_raw_from_an_object_and_serialize_it_as_one() -> None:
    version = LiveVersion.model_validate(
        {"id": "v1", "name": "V1", "model_id": "m1", "raw": {"id": "v1", "x": [1]}}
    )
    assert isinstance(version.raw, RawRecord)
    assert version.model_dump(mode="json")["raw"] == {"id": "v1", "x": [1]}
    assert LiveVersion(id="v2", name="V2", model_id="m1").raw is EMPTY_RECORD
    with pytest.raises(ValidationError, match="must be a JSON object"):
        LiveVersion.model_validate({"id": "v1", "name": "V1", "model_id": "m1", "raw": "{}"})


def test_a_change_round_trips_its_before_record_through_json() -> None:
    change = _change(RawRecord.of({"id": "m1", "versions": [{"id": "v1"}]}))
    dumped = json.loads(change.model_dump_json())
    assert dumped["before"] == {"id": "m1", "versions": [{"id": "v1"}]}
    again = Change.model_validate(dumped)
    assert again == change and again.before == change.before


def test_trusted_records_are_the_validated_records() -> None:
    """Providers build records with `trusted` (no validation, one shared fields set): each must
    be indistinguishable from the validated record in every operation the code uses."""
    when = datetime(2024, 5, 1, tzinfo=UTC)
    raw = RawRecord.of({"id": "v1", "extra": [1, 2]})
    values: dict[str, Any] = {
        "id": "v1",
        "name": "V1",
        "model_id": "m1",
        "created": when,
        "attributes": {"description": "d", "model_path": None},
        "preset": False,
        "raw": raw,
    }
    trusted, validated = LiveVersion.trusted(**values), LiveVersion(**values)
    assert trusted == validated
    assert trusted.model_dump() == validated.model_dump()
    assert trusted.model_dump(mode="json") == validated.model_dump(mode="json")
    assert repr(trusted) == repr(validated)
    assert hash(trusted.id) == hash(validated.id)
    with pytest.raises(ValidationError, match="frozen"):
        trusted.name = "V2"
    renamed = trusted.model_copy(update={"name": "V2"})
    assert renamed.name == "V2" and trusted.name == "V1"
    # The shared fields set is never changed through a copy.
    assert LiveVersion.trusted(**values).model_fields_set == set(LiveVersion.model_fields)

    model_values: dict[str, Any] = {
        "id": "m1",
        "name": "M",
        "created": None,
        "attributes": {"description": None},
        "preset": True,
        "versions": (trusted,),
        "raw": EMPTY_RECORD,
    }
    model, checked = LiveModel.trusted(**model_values), LiveModel(**model_values)
    assert model == checked
    assert model.model_dump(mode="json") == checked.model_dump(mode="json")
    with_none = model.model_copy(update={"versions": ()})
    assert with_none.versions == () and model.versions == (trusted,)


def test_trusted_changes_are_the_validated_changes() -> None:
    values: dict[str, Any] = {
        "address": "p/m/v1",
        "provider": "p",
        "kind": Kind.VERSION,
        "id": "v1",
        "name": "v1",
        "model_id": "m1",
        "model_name": "m",
        "actions": (Action.DELETE,),
        "action_reason": Reason.NOT_IN_MANIFEST,
        "detail": "not declared",
        "blocked_by": (),
        "version_ids": (),
        "state_digest": "sha256:0",
        "before": RawRecord.of({"id": "v1"}),
    }
    trusted, validated = Change.trusted(**values), Change(**values)
    assert trusted == validated
    assert trusted.model_dump(mode="json") == validated.model_dump(mode="json")
    assert trusted.model_dump_json() == validated.model_dump_json()
    assert trusted.is_delete and trusted.identity == validated.identity


def test_a_plan_file_with_nan_is_not_a_plan_file() -> None:
    text = '{"format_version": 2, "before": NaN}'
    with pytest.raises(PlanFileError, match="not a plan file \\(invalid JSON"):
        Plan.from_json(text, source="p.json")


def test_a_copied_record_is_the_model_copy_with_the_shared_fields_set() -> None:
    version = LiveVersion.trusted(
        id="v1",
        name="V1",
        model_id="m1",
        created=None,
        attributes={},
        preset=False,
        raw=EMPTY_RECORD,
    )
    model = LiveModel(id="m1", name="M", raw=RawRecord.of({"id": "m1"}))
    with_versions = copied(model, versions=(version,))
    assert with_versions == model.model_copy(update={"versions": (version,)})
    assert with_versions.model_dump(mode="json") == model.model_copy(
        update={"versions": (version,)}
    ).model_dump(mode="json")
    assert model.versions == () and with_versions.versions == (version,)
    assert with_versions.model_fields_set == set(LiveModel.model_fields)
