"""Which live object each declaration names: one algorithm, for models and for versions alike.

A declaration with an `id` names the live object of that id when it carries the declared name, or
when no live object carries that name (an object renamed on the platform, followed by its id).
When the id is not live, or names an object of another name while objects of the declared name
are live, the author may have meant any of them: never guess, hold them all (`WRONG_ID`). A
declaration without an id names the one live object of its name; several namesakes are all held
(`NAMESAKES`). No live object: `MISSING`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar


class _Declared(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def id(self) -> str | None: ...


class _Live(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def id(self) -> str: ...


S = TypeVar("S", bound=_Declared)
L = TypeVar("L", bound=_Live)


class Found(Enum):
    #: The one live object the declaration names.
    MATCHED = "matched"
    #: No id, and several live objects carry the name: all are held.
    NAMESAKES = "namesakes"
    #: The id is not live or names an object of another name, and objects of the declared name
    #: are live: they are held, and so is the id's object.
    WRONG_ID = "wrong_id"
    #: No live object answers to the declaration.
    MISSING = "missing"


@dataclass(frozen=True)
class Resolution(Generic[S, L]):
    spec: S
    found: Found
    #: The live objects the declaration resolves to: one when MATCHED, none when MISSING; for
    #: WRONG_ID the namesakes, then the id's object when it is live.
    objects: tuple[L, ...]
    #: WRONG_ID: whether the declared id is live (under another name).
    id_live: bool = False

    @property
    def namesakes(self) -> tuple[L, ...]:
        """The live objects that carry the declared name (for NAMESAKES and WRONG_ID)."""
        return self.objects[:-1] if self.id_live else self.objects


def resolve(specs: Sequence[S], live: Sequence[L]) -> list[Resolution[S, L]]:
    """What each of `specs` names among `live` (in scope, in a fixed order), in `specs` order."""
    by_id = {item.id: item for item in live}
    by_name: dict[str, list[L]] = defaultdict(list)
    for item in live:
        by_name[item.name].append(item)
    return [_resolve_one(spec, by_id, by_name) for spec in specs]


def _resolve_one(spec: S, by_id: dict[str, L], by_name: dict[str, list[L]]) -> Resolution[S, L]:
    namesakes = tuple(by_name.get(spec.name, ()))
    if spec.id is None:
        if len(namesakes) > 1:
            return Resolution(spec, Found.NAMESAKES, namesakes)
        return Resolution(spec, Found.MATCHED if namesakes else Found.MISSING, namesakes)
    picked = by_id.get(spec.id)
    if picked is not None and (picked.name == spec.name or not namesakes):
        return Resolution(spec, Found.MATCHED, (picked,))
    if namesakes:
        extra = () if picked is None else (picked,)
        return Resolution(spec, Found.WRONG_ID, namesakes + extra, id_live=picked is not None)
    return Resolution(spec, Found.MISSING, ())


def claimed_twice(resolutions: Sequence[Resolution[S, L]]) -> list[tuple[L, S, S]]:
    """Each live object that two declarations resolve to (matched or held), with both.

    Which of the two would win is an accident of their order, and one may keep what the other
    deletes: the planner refuses them all.
    """
    first: dict[str, S] = {}
    clashes: list[tuple[L, S, S]] = []
    for resolution in resolutions:
        for item in resolution.objects:
            earlier = first.setdefault(item.id, resolution.spec)
            if earlier is not resolution.spec:
                clashes.append((item, earlier, resolution.spec))
    return clashes
