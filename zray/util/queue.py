"""``Queue``: a first-in, first-out queue held by an actor, shared by every process that gets
a copy of it (pass it to tasks and actors like any value)."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterable
from typing import Any, Dict, List, Optional

from zray import api


class Empty(queue.Empty):
    """Raised by ``get`` when no item came in time (or at once, without blocking)."""


class Full(queue.Full):
    """Raised by ``put`` when no slot freed up in time (or at once, without blocking)."""


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A FIFO queue on an actor, with blocking, non-blocking, batched and asyncio access.

    Args:
        maxsize: the most items the queue holds; 0 for no bound.
        actor_options: options for the actor holding the items (``.options(**actor_options)``),
            e.g. resources or a ``name`` so other jobs can find it.

    A blocked ``get`` or ``put`` that times out raises the actor call's error, which is an
    ``Empty`` (``Full``) as Ray's is; ``block=False`` raises a plain ``Empty`` (``Full``).
    """

    def __init__(self, maxsize: int = 0, actor_options: Optional[Dict] = None) -> None:
        self.maxsize = maxsize
        self.actor = _QueueActor.options(**(actor_options or {})).remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return api.get(self.actor.qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        return api.get(self.actor.empty.remote())

    def full(self) -> bool:
        return api.get(self.actor.full.remote())

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Adds ``item``; when the queue is full, waits up to ``timeout`` seconds (None: as
        long as it takes) for a slot, or with ``block=False`` raises ``Full`` at once.
        Producers blocked on a full queue are not served in any promised order."""
        if not block:
            try:
                api.get(self.actor.put_nowait.remote(item))
            except asyncio.QueueFull:
                raise Full from None
            return
        _check_timeout(timeout)
        api.get(self.actor.put.remote(item, timeout))

    async def put_async(
        self, item: Any, block: bool = True, timeout: Optional[float] = None
    ) -> None:
        """``put`` for asyncio code: awaits instead of blocking the event loop."""
        if not block:
            try:
                await self.actor.put_nowait.remote(item)
            except asyncio.QueueFull:
                raise Full from None
            return
        _check_timeout(timeout)
        await self.actor.put.remote(item, timeout)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """Removes and returns the oldest item; when the queue is empty, waits up to
        ``timeout`` seconds (None: as long as it takes), or with ``block=False`` raises
        ``Empty`` at once."""
        if not block:
            try:
                return api.get(self.actor.get_nowait.remote())
            except asyncio.QueueEmpty:
                raise Empty from None
        _check_timeout(timeout)
        return api.get(self.actor.get.remote(timeout))

    async def get_async(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        """``get`` for asyncio code: awaits instead of blocking the event loop."""
        if not block:
            try:
                return await self.actor.get_nowait.remote()
            except asyncio.QueueEmpty:
                raise Empty from None
        _check_timeout(timeout)
        return await self.actor.get.remote(timeout)

    def put_nowait(self, item: Any) -> None:
        """``put(item, block=False)``."""
        return self.put(item, block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Adds all of ``items`` in order, or none of them (``Full``) if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        # A list travels to the actor; a generator would not pickle.
        api.get(self.actor.put_nowait_batch.remote(list(items)))

    def get_nowait(self) -> Any:
        """``get(block=False)``."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items: int) -> List[Any]:
        """Removes and returns the ``num_items`` oldest items, or none of them (``Empty``) if
        the queue holds fewer."""
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return api.get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Ends the queue's actor (its items are lost) and frees what it reserved: at once with
        ``force``, else after the calls already sent to it, killing it if that takes longer
        than ``grace_period_s`` seconds."""
        if self.actor:
            if force:
                api.kill(self.actor, no_restart=True)
            else:
                done = self.actor.__ray_terminate__.remote()
                _, not_done = api.wait([done], timeout=grace_period_s)
                if not_done:
                    api.kill(self.actor, no_restart=True)
        self.actor = None


@api.remote
class _QueueActor:
    """Holds the items. Its methods are coroutines, which makes it an async actor: a blocked
    get or put waits on the event loop while other calls (the put that unblocks it) run."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item, timeout=None):
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full from None

    async def get(self, timeout=None):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty from None

    async def put_nowait(self, item):
        self.queue.put_nowait(item)

    async def put_nowait_batch(self, items: list):
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            raise Full(
                f"Cannot add {len(items)} items to queue of size {self.queue.qsize()} "
                f"and maxsize {self.maxsize}."
            )
        for item in items:
            self.queue.put_nowait(item)

    async def get_nowait(self):
        return self.queue.get_nowait()

    async def get_nowait_batch(self, num_items: int):
        if num_items > self.queue.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {self.queue.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]
