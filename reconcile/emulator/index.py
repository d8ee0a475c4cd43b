"""Fast lookups and sorts over the emulator's live state, never stale.

The handlers work on the plain state dict, which tests may edit in place between requests, so
nothing derived from it may be trusted blindly. But a benchmark workspace holds 10,000 models, and
a linear scan per request (or a full sort per page) would make the emulator, not the client under
test, the bottleneck. These helpers keep derived data and check it against the state on every use
at O(1) (lookups) or C speed (sorts); whatever does not check out is rebuilt from the state, so the
answers are always those a scan of the current state gives. A served emulator's state changes only
through its handlers, and a sort is then trusted while the state's revision is the same.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

Json = dict[str, Any]


class ListIndex:
    """Finds the record of a list whose `key` equals a value, in O(1).

    Keys are unique in a loaded state (the loader checks ids); should an edit make one twice,
    `find` returns one of the records that have it, not necessarily the first.

    An entry is trusted only if the record it names is still at its place in the same list with
    the same key (a record deleted through `without` shifts the places after it, which is
    accounted for); a list replaced, grown, reordered or edited otherwise is indexed anew.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._items: list[Json] | None = None
        #: key value -> place in the list as it was when indexed
        self._places: dict[Hashable, int] = {}
        self._size = 0
        #: places (as when indexed) of the records removed since, sorted
        self._removed: list[int] = []

    def _build(self, items: list[Json]) -> None:
        places: dict[Hashable, int] = {}
        for place, record in enumerate(items):
            value = record.get(self.key) if isinstance(record, dict) else None
            if isinstance(value, Hashable) and value not in places:
                places[value] = place
        self._items, self._places, self._size, self._removed = items, places, len(items), []

    def _current(self, value: Hashable) -> int | None:
        original = self._places.get(value)
        if original is None:
            return None
        return original - bisect.bisect_left(self._removed, original)

    def _checks_out(self, items: list[Json], value: Hashable, place: int) -> bool:
        record = items[place] if place < len(items) else None
        return isinstance(record, dict) and record.get(self.key) == value

    def find(self, items: list[Json], value: Any) -> int | None:
        """The place in `items` of a record with `key` == `value`, or None if none has it."""
        if not isinstance(value, Hashable):
            return _scan(items, self.key, value)
        fresh = items is self._items and len(items) == self._size - len(self._removed)
        if fresh:
            place = self._current(value)
            if place is not None and self._checks_out(items, value, place):
                return place
        self._build(items)
        place = self._current(value)
        return place if place is not None and self._checks_out(items, value, place) else None

    def without(self, items: list[Json], places: list[int]) -> list[Json]:
        """A copy of `items` without the records at `places` (as `find` returned them)."""
        kept = items.copy()
        for place in sorted(set(places), reverse=True):
            del kept[place]
        if items is not self._items or len(items) != self._size - len(self._removed):
            return kept  # not what the index knows: the next `find` indexes the copy anew
        values = [items[place].get(self.key) for place in sorted(set(places))]
        for place, value in zip(sorted(set(places)), values, strict=True):
            if not isinstance(value, Hashable) or self._current(value) != place:
                self._items = None  # a record the index does not name at that place
                return kept
        for value in values:
            bisect.insort(self._removed, self._places.pop(value))
        self._items = kept
        return kept


def _scan(items: list[Json], key: str, value: Any) -> int | None:
    for place, record in enumerate(items):
        if record.get(key) == value:
            return place
    return None


class SortMemo:
    """The last sorts of some lists, reused while the records and their sort fields are the same.

    `sort(tag, select, fields, order)` returns `order(select())`, which must depend only on the
    records' `fields` and their order in `select()`. Without a `revision`, the records (by
    identity) and those fields (by value) are compared with the memo's at C speed before it is
    reused: 3-15 ms a page of 10,000 models, most of it reading fields scattered in memory, and
    the whole of a served emulator's time on a models page. With one (a number that changes with
    every change of the state, which then changes no other way), a sort made at that revision is
    reused unread: `tag` must then say everything `select` depends on but the state.
    """

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._memo: dict[Hashable, _Sorted] = {}

    def sort(
        self,
        tag: Hashable,
        select: Callable[[], list[Json]],
        fields: tuple[str, ...],
        order: Callable[[list[Json]], list[Json]],
        place_of: str | None = None,
        revision: int | None = None,
    ) -> tuple[list[Json], dict[Any, int]]:
        """`order(select())`, and (with `place_of`) each record's place in it by that field."""
        memo = self._memo.get(tag)
        if memo is not None and revision is not None and memo.revision == revision:
            return memo.ordered, memo.places
        items = select()
        try:
            identities = list(map(id, items))
            # One list per field: no tuple per record, and equal lists compare by identity.
            values = [list(map(itemgetter(name), items)) for name in fields]
        except (KeyError, TypeError, AttributeError):
            ordered = order(items)  # a record the fast path cannot read: no memo
            return ordered, _places(ordered, place_of)
        if memo is not None and memo.identities == identities and memo.values == values:
            memo.revision = revision
            return memo.ordered, memo.places
        ordered = order(items)
        places = _places(ordered, place_of)
        if len(self._memo) >= self.size and tag not in self._memo:
            self._memo.pop(next(iter(self._memo)))
        self._memo[tag] = _Sorted(identities, values, ordered, places, revision)
        return ordered, places


@dataclass(slots=True)
class _Sorted:
    """One sort in a `SortMemo`: what it was made from (records, sort fields, revision), and it."""

    identities: list[int]
    values: list[list[Any]]
    ordered: list[Json]
    places: dict[Any, int]
    revision: int | None


def _places(ordered: list[Json], key: str | None) -> dict[Any, int]:
    if key is None:
        return {}
    places: dict[Any, int] = {}
    for place, record in enumerate(ordered):
        value = record.get(key)
        if isinstance(value, Hashable):
            places.setdefault(value, place)
    return places
