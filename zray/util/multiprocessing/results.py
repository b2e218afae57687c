"""What ``Pool``'s asynchronous calls return: ``AsyncResult`` and the ``imap`` iterators.

Each pool call runs a *chunk* of items on one actor, which answers with a list holding, per
item, its value or a ``PoolTaskError``. A chunk whose actor died answers with a ``ChunkFailed``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from multiprocessing import TimeoutError
from typing import Optional

from zray import api
from zray.exceptions import RayError, RaySystemError

logger = logging.getLogger(__name__)

# How often a collector thread looks up from its wait to notice a shutdown.
_POLL_S = 1.0


class PoolTaskError(Exception):
    """An item's exception, carried in its chunk's answer as a value."""

    def __init__(self, underlying):
        super().__init__(underlying)
        self.underlying = underlying


class ChunkFailed:
    """The whole chunk failed (its actor died): every item of it fails with ``error``."""

    def __init__(self, error: BaseException):
        self.error = error


def error_of(result) -> Optional[BaseException]:
    if isinstance(result, PoolTaskError):
        return result.underlying
    if isinstance(result, ChunkFailed):
        return result.error
    return None


def fetch(ref) -> list:
    try:
        return api.get(ref)
    except RayError as exc:
        return [ChunkFailed(exc)]


def _call(callback, argument):
    # A failing callback must not stop the collection (stdlib multiprocessing logs it too).
    try:
        callback(argument)
    except Exception:  # noqa: BLE001
        logger.exception("a pool callback raised")


class AsyncResult:
    """The result of ``apply_async``, ``map_async`` or ``starmap_async``.

    A thread collects the chunks as they finish and then runs the callbacks, as
    ``multiprocessing`` does: ``callback`` once with every value (the one value for
    ``apply_async``) if no item failed, else ``error_callback`` once with the first
    exception seen. ``ready()`` turns true after the callbacks ran.
    """

    def __init__(self, chunk_object_refs, callback=None, error_callback=None, single_result=False):
        self._refs = list(chunk_object_refs)
        self._chunks: list = [None] * len(self._refs)
        self._single_result = single_result
        self._callback = callback
        self._error_callback = error_callback
        self._error: Optional[BaseException] = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="zray-pool-result", daemon=True)
        self._thread.start()

    def _collect(self):
        try:
            pending = {ref: i for i, ref in enumerate(self._refs)}
            while pending:
                if not api.is_initialized():
                    return
                ready, rest = api.wait(list(pending), num_returns=1, timeout=_POLL_S)
                if ready and rest:  # take every chunk that is ready, not one per wait
                    more, _ = api.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                for ref in ready:
                    self._store(pending.pop(ref), fetch(ref))
        except Exception:  # noqa: BLE001 - the cluster went away mid-wait
            logger.exception("collecting the results of a pool call failed")
        finally:
            if self._error is None and self._callback is not None and self._complete():
                values = self._values()
                _call(self._callback, values[0] if self._single_result else values)
            self._done.set()

    def _store(self, index: int, chunk: list):
        self._chunks[index] = chunk
        if self._error is None:
            for result in chunk:
                error = error_of(result)
                if error is not None:
                    self._error = error
                    if self._error_callback is not None:
                        _call(self._error_callback, error)
                    break

    def _complete(self) -> bool:
        return all(chunk is not None for chunk in self._chunks)

    def _values(self) -> list:
        return list(itertools.chain.from_iterable(self._chunks))

    def wait(self, timeout: Optional[float] = None):
        """Waits up to ``timeout`` seconds (None: no bound) for the result; never raises."""
        self._done.wait(timeout)

    def get(self, timeout: Optional[float] = None):
        """The value(s), waiting up to ``timeout`` seconds; raises the first failed item's
        exception (in item order), or ``multiprocessing.TimeoutError``."""
        self.wait(timeout)
        if not self._done.is_set():
            raise TimeoutError
        values = self._values()
        for value in values:
            error = error_of(value)
            if error is not None:
                raise error
        if not self._complete():
            raise RaySystemError("the cluster shut down before the result came")
        return values[0] if self._single_result else values

    def ready(self) -> bool:
        """Whether the result is in (and the callbacks ran)."""
        return self._done.is_set()

    def successful(self) -> bool:
        """Whether no item failed; raises ``ValueError`` before the result is ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None and self._complete()


class IMapIterator:
    """Results of ``imap``/``imap_unordered``. At most one chunk per actor is in flight: the
    next chunk goes to an actor when it hands back its previous one, so a long iterable is
    read as the work goes and not held in memory at once."""

    _ordered = True

    def __init__(self, pool, func, iterable, chunksize=None):
        self._pool = pool
        self._func = func
        self._items = iter(iterable)
        if chunksize is None:
            chunksize = pool._calculate_chunksize(iterable) if hasattr(iterable, "__len__") else 1
        self._chunksize = max(1, chunksize)
        self._exhausted = False
        self._in_flight: dict = {}  # ref -> (chunk index, actor index)
        self._finished: dict = {}  # chunk index -> results, for the ordered iterator
        self._next_chunk = 0  # the next chunk index the ordered iterator hands out
        self._submitted = 0
        self._ready: collections.deque = collections.deque()
        for actor_index in range(len(pool._actor_pool)):
            self._submit(actor_index)

    def _submit(self, actor_index: int):
        if self._exhausted:
            return
        chunk = list(itertools.islice(self._items, self._chunksize))
        if len(chunk) < self._chunksize:
            self._exhausted = True
        if chunk:
            ref = self._pool._submit_chunk(self._func, iter(chunk), len(chunk), actor_index)
            self._in_flight[ref] = (self._submitted, actor_index)
            self._submitted += 1

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout: Optional[float] = None):
        """The next result; raises ``multiprocessing.TimeoutError`` if none came within
        ``timeout`` seconds, and the item's exception if it failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._ordered and self._next_chunk in self._finished:
                self._ready.extend(self._finished.pop(self._next_chunk))
                self._next_chunk += 1
                continue
            if not self._in_flight:
                raise StopIteration
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done, _ = api.wait(list(self._in_flight), num_returns=1, timeout=left)
            if not done:
                raise TimeoutError
            chunk_index, actor_index = self._in_flight.pop(done[0])
            results = fetch(done[0])
            self._submit(actor_index)
            if self._ordered:
                self._finished[chunk_index] = results
            else:
                self._ready.extend(results)
        result = self._ready.popleft()
        error = error_of(result)
        if error is not None:
            raise error
        return result


class OrderedIMapIterator(IMapIterator):
    """``imap``: results in the order of the items."""


class UnorderedIMapIterator(IMapIterator):
    """``imap_unordered``: results in the order they finish."""

    _ordered = False
