"""Calls started while a listing's pages still come: each page's items are followed up (their
versions, their details) as soon as the page arrives, not after the last page.

The first failure anywhere, in a page or in a follow-up, cancels everything else: no request is
sent for a doomed listing, and the failure that caused it is what is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Iterable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


async def gather_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await all; on the first failure cancel the rest (no requests sent for a doomed listing)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    if not tasks:  # a listing of one page (each of 10,000 models' versions): nothing to wait for
        return []
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        await cancel_all(tasks)
        raise


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel the tasks and wait until they are done."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Fanout(Generic[T]):
    """Follow-up calls `start`ed while the listings given to `run` go on."""

    def __init__(self) -> None:
        self._started: list[asyncio.Future[T]] = []
        self._listings: tuple[asyncio.Future[Any], ...] = ()
        #: The first follow-up that failed, which stopped the listings.
        self._failed: list[BaseException] = []

    @property
    def total(self) -> int | None:
        """How many follow-ups there are: known once the first listing given to `run` (the one
        whose pages start them) is done."""
        paging = self._listings[0] if self._listings else None
        return len(self._started) if paging is not None and paging.done() else None

    def start(self, call: Coroutine[Any, Any, T]) -> None:
        task = asyncio.ensure_future(call)
        task.add_done_callback(self._stop_on_failure)
        self._started.append(task)

    def _stop_on_failure(self, task: asyncio.Future[T]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None and not self._failed:
            self._failed.append(error)
            for listing in self._listings:
                listing.cancel()

    async def run(self, *listings: Awaitable[Any]) -> tuple[list[Any], list[T]]:
        """The listings' results, and the follow-ups' in the order they were started; the first
        listing is the one whose pages start the follow-ups."""
        self._listings = tuple(asyncio.ensure_future(listing) for listing in listings)
        try:
            results = list(await asyncio.gather(*self._listings))
            return results, await gather_all(self._started)
        except BaseException:
            await cancel_all([*self._listings, *self._started])
            if self._failed:
                raise self._failed[0] from None
            raise
