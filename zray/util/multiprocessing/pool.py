"""``Pool``: the ``multiprocessing.Pool`` interface on a set of actors, which may run on any
node of the cluster.

Work is cut into chunks of items; each chunk is one call on one actor, which runs the items
one after the other and answers with all their results.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from zray import api
from zray.util.multiprocessing.results import (
    AsyncResult,
    OrderedIMapIterator,
    PoolTaskError,
    UnorderedIMapIterator,
)

logger = logging.getLogger(__name__)


@api.remote(num_cpus=0)
class PoolActor:
    """One pool process. It holds no CPU of its own, as in Ray: the pool's size is checked
    against the cluster's CPUs instead."""

    def __init__(self, initializer=None, initargs=None):
        if initializer:
            initializer(*(initargs or ()))

    def ping(self):
        """Answers once the constructor (and the initializer) ran."""

    def run_batch(self, func, batch):
        results = []
        for args, kwargs in batch:
            try:
                results.append(func(*(args or ()), **(kwargs or {})))
            except Exception as exc:  # noqa: BLE001 - the item fails, not the chunk
                results.append(PoolTaskError(exc))
        return results


class Pool:
    """A pool of actor processes running functions in parallel (``multiprocessing.Pool``).

    Args:
        processes: number of actors; default: the cluster's CPU count. More than the cluster
            has CPUs is refused.
        initializer: called with ``*initargs`` in each actor when it starts.
        initargs: arguments for ``initializer``.
        maxtasksperchild: chunks an actor runs before it is replaced by a fresh one.
        context: accepted for compatibility and ignored (with a warning).
        ray_address: cluster to join when zray is not initialized yet; otherwise
            ``ZRAY_ADDRESS``/``RAY_ADDRESS`` or the cluster ``zray start`` recorded, else a
            new local cluster with ``processes`` CPUs.
        ray_remote_args: options for the actors (``PoolActor.options(**ray_remote_args)``).
    """

    def __init__(
        self,
        processes: Optional[int] = None,
        initializer: Optional[Callable] = None,
        initargs: Optional[Iterable] = None,
        maxtasksperchild: Optional[int] = None,
        context: Any = None,
        ray_address: Optional[str] = None,
        ray_remote_args: Optional[Dict[str, Any]] = None,
    ):
        self._closed = False
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasksperchild = maxtasksperchild or -1
        self._actor_deletion_ids: list = []
        self._current_index = 0
        self._ray_remote_args = ray_remote_args or {}
        self._pool_actor = None
        if context:
            logger.warning(
                "The 'context' argument of Pool is ignored: the actors are zray processes."
            )
        processes = self._init_ray(processes, ray_address)
        self._pool_actor = PoolActor.options(**self._ray_remote_args)
        self._actor_pool = [self._new_actor_entry() for _ in range(processes)]
        api.get([actor.ping.remote() for actor, _ in self._actor_pool])

    @staticmethod
    def _init_ray(processes: Optional[int], ray_address: Optional[str]) -> int:
        if not api.is_initialized():
            from zray._config import config
            from zray._private.common import cluster_record

            if ray_address is None and (config.address or cluster_record.read() is not None):
                # init() finds that cluster itself; "local" asks for a new one, of our size.
                api.init(**({"num_cpus": processes} if config.address == "local" else {}))
            elif ray_address is not None:
                api.init(
                    address=ray_address,
                    **({"num_cpus": processes} if ray_address == "local" else {}),
                )
            else:
                api.init(num_cpus=processes)
        cpus = int(api.cluster_resources().get("CPU", 0))
        if processes is None:
            processes = cpus
        if processes <= 0:
            raise ValueError("Processes in the pool must be >0.")
        if cpus < processes:
            raise ValueError(
                f"Tried to start a pool with {processes} processes on an existing "
                f"ray cluster, but there are only {cpus} CPUs in the ray cluster."
            )
        return processes

    # ------------------------------------------------------------------ actors

    def _new_actor_entry(self) -> Tuple[Any, int]:
        """(actor, chunks it ran so far)."""
        return self._pool_actor.remote(self._initializer, self._initargs), 0

    def _stop_actor(self, actor):
        self._wait_for_stopping_actors(timeout=0.0)
        # Queued behind the actor's calls: it ends once the work already sent is done.
        self._actor_deletion_ids.append(actor.__ray_terminate__.remote())

    def _wait_for_stopping_actors(self, timeout: Optional[float] = None):
        if self._actor_deletion_ids:
            _, self._actor_deletion_ids = api.wait(
                self._actor_deletion_ids, num_returns=len(self._actor_deletion_ids), timeout=timeout
            )

    def _next_actor_index(self) -> int:
        self._current_index = (self._current_index + 1) % len(self._actor_pool)
        return self._current_index

    def _run_batch(self, actor_index: int, func, batch: list):
        actor, count = self._actor_pool[actor_index]
        ref = actor.run_batch.remote(func, batch)
        count += 1
        if count == self._maxtasksperchild:
            self._stop_actor(actor)
            actor, count = self._new_actor_entry()
        self._actor_pool[actor_index] = (actor, count)
        return ref

    # ------------------------------------------------------------------ chunks

    def _calculate_chunksize(self, iterable) -> int:
        # About four chunks per actor: big enough to amortize a call, small enough to balance.
        chunksize, extra = divmod(len(iterable), len(self._actor_pool) * 4)
        return chunksize + 1 if extra else chunksize

    def _submit_chunk(
        self, func, iterator, chunksize: int, actor_index: int, unpack_args: bool = False
    ):
        chunk = []
        for args in iterator:
            chunk.append((args if unpack_args else (args,), {}))
            if len(chunk) == chunksize:
                break
        return self._run_batch(actor_index, func, chunk)

    def _chunk_and_run(
        self, func, iterable, chunksize: Optional[int] = None, unpack_args: bool = False
    ) -> list:
        items = iterable if hasattr(iterable, "__len__") else list(iterable)
        if chunksize is None:
            chunksize = self._calculate_chunksize(items)
        iterator = iter(items)
        refs: list = []
        while len(refs) * chunksize < len(items):
            refs.append(
                self._submit_chunk(
                    func, iterator, chunksize, len(refs) % len(self._actor_pool), unpack_args
                )
            )
        return refs

    def _map_async(
        self, func, iterable, chunksize=None, unpack_args=False, callback=None, error_callback=None
    ) -> AsyncResult:
        self._check_running()
        if chunksize is not None and chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        refs = self._chunk_and_run(func, iterable, chunksize, unpack_args)
        return AsyncResult(refs, callback, error_callback)

    # ------------------------------------------------------------------ the stdlib interface

    def apply(self, func: Callable, args: Optional[Tuple] = None, kwargs: Optional[Dict] = None):
        """``func(*args, **kwargs)`` on one of the actors; returns its result."""
        return self.apply_async(func, args, kwargs).get()

    def apply_async(
        self,
        func: Callable,
        args: Optional[Tuple] = None,
        kwargs: Optional[Dict] = None,
        callback: Optional[Callable] = None,
        error_callback: Optional[Callable] = None,
    ) -> AsyncResult:
        """``func(*args, **kwargs)`` on the next actor in turn; ``callback`` gets the result,
        ``error_callback`` the exception."""
        self._check_running()
        ref = self._run_batch(self._next_actor_index(), func, [(args, kwargs)])
        return AsyncResult([ref], callback, error_callback, single_result=True)

    def map(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = None) -> List:
        """``[func(x) for x in iterable]``, computed in chunks spread over the actors."""
        return self._map_async(func, iterable, chunksize).get()

    def map_async(
        self,
        func: Callable,
        iterable: Iterable,
        chunksize: Optional[int] = None,
        callback: Optional[Callable] = None,
        error_callback: Optional[Callable] = None,
    ) -> AsyncResult:
        """``map`` without waiting: ``callback`` gets the list of results if every item
        succeeded, ``error_callback`` the first exception otherwise."""
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = None):
        """``[func(*args) for args in iterable]``."""
        return self._map_async(func, iterable, chunksize, unpack_args=True).get()

    def starmap_async(
        self,
        func: Callable,
        iterable: Iterable,
        callback: Optional[Callable] = None,
        error_callback: Optional[Callable] = None,
    ) -> AsyncResult:
        """``starmap`` without waiting, with ``map_async``'s callbacks."""
        return self._map_async(func, iterable, None, True, callback, error_callback)

    def imap(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = 1):
        """An iterator over ``func(x)`` in the order of ``iterable``, which is read as the
        actors take work (one chunk of ``chunksize`` items per actor at a time)."""
        self._check_running()
        return OrderedIMapIterator(self, func, iterable, chunksize)

    def imap_unordered(self, func: Callable, iterable: Iterable, chunksize: Optional[int] = 1):
        """As ``imap``, but yields results in the order they finish."""
        self._check_running()
        return UnorderedIMapIterator(self, func, iterable, chunksize)

    # ------------------------------------------------------------------ lifetime

    def _check_running(self):
        if self._closed:
            raise ValueError("Pool not running")

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()

    def close(self):
        """Takes no more work; the actors end once the work already submitted is done."""
        for actor, _ in self._actor_pool:
            self._stop_actor(actor)
        self._closed = True

    def terminate(self):
        """Takes no more work and kills the actors now: outstanding work fails."""
        if not self._closed:
            self.close()
        for actor, _ in self._actor_pool:
            api.kill(actor)

    def join(self):
        """Waits for the actors of a closed pool to end (after their work, unless
        terminated).

        Raises:
            ValueError: if the pool was not closed.
        """
        if not self._closed:
            raise ValueError("Pool is still running")
        self._wait_for_stopping_actors()
