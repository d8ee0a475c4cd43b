"""The emulator's derived lookups and sorts answer exactly what a scan of the current state does,
however the state was edited in between (as tests edit it in place)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.emulator.index import ListIndex, SortMemo

Json = dict[str, Any]


def _scan(items: list[Json], value: str) -> int | None:
    return next((place for place, item in enumerate(items) if item.get("id") == value), None)


# Each step edits the list the way a handler or a test might: through the index (a delete), or
# behind its back (append, replace a record, change an id in place, swap, replace the list).
_steps = st.lists(
    st.tuples(
        st.sampled_from(["find", "without", "append", "replace", "rename", "swap", "new_list"]),
        st.integers(0, 30),
        st.integers(0, 30),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 20), steps=_steps)
def test_a_list_index_finds_what_a_scan_finds_after_any_edits(
    size: int, steps: list[tuple[str, int, int]]
) -> None:
    items: list[Json] = [{"id": f"m{i}"} for i in range(size)]
    index = ListIndex("id")
    for action, a, b in steps:
        value = f"m{a}"
        if action == "find":
            place = index.find(items, value)
            assert place == _scan(items, value)
        elif action == "without":
            place = index.find(items, value)
            if place is not None:
                items = index.without(items, [place])
        elif action == "append":
            items.append({"id": value})
        elif action == "replace" and items:
            items[a % len(items)] = {"id": value}
        elif action == "rename" and items:
            items[a % len(items)]["id"] = value
        elif action == "swap" and items:
            i, j = a % len(items), b % len(items)
            items[i], items[j] = items[j], items[i]
        elif action == "new_list":
            items = list(items)
        for probe in {value, "m0", "m7", "m14"}:
            _assert_finds(index, items, probe)


def _assert_finds(index: ListIndex, items: list[Json], value: str) -> None:
    place = index.find(items, value)
    ids = [item.get("id") for item in items]
    if len(set(ids)) == len(ids):  # unique keys, as the state loader ensures: the scan's answer
        assert place == _scan(items, value)
    elif place is None:  # a key made twice by an edit: one of the records that have it
        assert value not in ids
    else:
        assert items[place].get("id") == value


def test_without_returns_a_new_list_and_leaves_the_old_one_alone() -> None:
    items = [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]
    index = ListIndex("id")
    places = [index.find(items, "b"), index.find(items, "d")]
    kept = index.without(items, [p for p in places if p is not None])
    assert [item["id"] for item in kept] == ["a", "c"]
    assert [item["id"] for item in items] == ["a", "b", "c", "d"]
    assert index.find(kept, "c") == 1
    assert index.find(kept, "b") is None


def test_a_list_index_finds_the_first_of_two_records_with_one_key() -> None:
    items = [{"id": "x", "n": 1}, {"id": "x", "n": 2}]
    assert ListIndex("id").find(items, "x") == 0


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(0, 5), max_size=15),
    edits=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 5)), max_size=10),
)
def test_a_sort_memo_sorts_as_a_fresh_sort_after_in_place_edits(
    times: list[int], edits: list[tuple[int, int]]
) -> None:
    items: list[Json] = [{"id": f"m{i:02d}", "t": t} for i, t in enumerate(times)]
    memo = SortMemo()

    def order(records: list[Json]) -> list[Json]:
        return sorted(records, key=lambda r: (r["t"], r["id"]), reverse=True)

    for place, value in [(0, 0), *edits]:
        ordered, places = memo.sort("tag", lambda: items, ("t", "id"), order, place_of="id")
        assert ordered == order(items)
        assert places == {record["id"]: i for i, record in enumerate(order(items))}
        if items:
            items[place % len(items)]["t"] = value  # edited in place, behind the memo's back


def test_a_sort_memo_falls_back_when_a_record_lacks_a_field() -> None:
    items: list[Json] = [{"id": "b", "t": 1}, {"id": "a"}]
    memo = SortMemo()
    ordered, _ = memo.sort(
        "tag", lambda: items, ("t", "id"), lambda r: sorted(r, key=lambda x: x["id"])
    )
    assert [record["id"] for record in ordered] == ["a", "b"]


def test_a_sort_memo_at_a_revision_is_reused_unread_until_the_revision_changes() -> None:
    """The contract of `revision`: while it holds, the state is not read (the caller vouches
    that nothing changed it); a new one reads the state and sorts it again."""
    items: list[Json] = [{"id": "a", "t": 1}, {"id": "b", "t": 2}]
    reads: list[str] = []
    memo = SortMemo()

    def sort(tag: str, revision: int) -> list[str]:
        def select() -> list[Json]:
            reads.append(tag)
            return list(items)

        order = lambda r: sorted(r, key=lambda x: x["t"])  # noqa: E731
        ordered, _ = memo.sort(tag, select, ("t", "id"), order, revision=revision)
        return [record["id"] for record in ordered]

    assert sort("x", 1) == ["a", "b"]
    items[0]["t"] = 3  # not through a handler: the revision stays, and so does the sort
    assert (sort("x", 1), reads) == (["a", "b"], ["x"])
    assert sort("y", 1) == ["b", "a"]  # another tag is another sort
    assert (sort("x", 2), reads) == (["b", "a"], ["x", "y", "x"])
