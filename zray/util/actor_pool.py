"""``ActorPool``: spread calls over a fixed set of actors, one call per actor at a time."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, TypeVar

from zray import api
from zray.exceptions import ActorDiedError

V = TypeVar("V")

_TIMED_OUT = "Timed out waiting for result"


def _refs_of(future) -> list:
    # `fn` may return one ref or a list of them (a method with num_returns > 1).
    return list(future) if isinstance(future, list) else [future]


def _key(future):
    return tuple(future) if isinstance(future, list) else future


class ActorPool:
    """Operates on a fixed pool of actors: ``fn(actor, value)`` submits one call (returning an
    ObjectRef) and the actor counts as busy until that call's result has been taken with
    ``get_next``/``get_next_unordered``; values submitted meanwhile wait for a free actor.

    The attribute names follow Ray's, since programs do peek at ``_idle_actors``.
    """

    def __init__(self, actors: list):
        self._idle_actors = list(actors)
        self._future_to_actor: dict = {}  # key of the call's ref(s) -> (index, actor)
        self._index_to_future: dict = {}  # submission index -> ref(s) not returned yet
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: list = []  # (fn, value) waiting for an idle actor

    # ------------------------------------------------------------------ bulk

    def map(self, fn: Callable[[Any, V], Any], values: List[V]):
        """Submits ``fn(actor, v)`` for every value; returns an iterator over the results in
        the order of ``values``. Results of earlier submissions not taken yet are dropped."""
        while self.has_next():
            try:
                self.get_next(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next)

    def map_unordered(self, fn: Callable[[Any, V], Any], values: List[V]):
        """As ``map``, but yields each result as soon as it is ready. Earlier submissions not
        taken yet are waited for and dropped first."""
        while self.has_next():
            self.get_next_unordered()
        for value in values:
            self.submit(fn, value)
        return self._results(self.get_next_unordered)

    def _results(self, take):
        while self.has_next():
            yield take()

    # ------------------------------------------------------------------ one at a time

    def submit(self, fn: Callable[[Any, V], Any], value: V):
        """Schedules ``fn(actor, value)`` on an idle actor, or once one becomes idle."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        future = fn(actor, value)
        self._future_to_actor[_key(future)] = (self._next_task_index, actor)
        self._index_to_future[self._next_task_index] = future
        self._next_task_index += 1

    def has_next(self) -> bool:
        """Whether a submitted call's result has not been returned yet."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: Optional[float] = None, ignore_if_timedout: bool = False):
        """The next result in submission order, waiting up to ``timeout`` seconds.

        Raises:
            StopIteration: if nothing is pending.
            TimeoutError: if the result is not ready in time; with ``ignore_if_timedout`` the
                call is dropped as well (its actor takes new work behind it).
            ValueError: if ``get_next_unordered`` has already returned every later result.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        # get_next_unordered may have taken results out of order: skip the holes it left.
        while (
            self._next_return_index < self._next_task_index
            and self._next_return_index not in self._index_to_future
        ):
            self._next_return_index += 1
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        index = self._next_return_index
        future = self._index_to_future[index]
        ready = True
        if timeout is not None:
            refs = _refs_of(future)
            done, _ = api.wait(refs, num_returns=len(refs), timeout=timeout)
            ready = len(done) == len(refs)
            if not ready and not ignore_if_timedout:
                raise TimeoutError(_TIMED_OUT)
        return self._take(index, future, ready)

    def get_next_unordered(self, timeout: Optional[float] = None, ignore_if_timedout: bool = False):
        """Any ready result (results may come back in a different order than submitted),
        waiting up to ``timeout`` seconds.

        Raises:
            StopIteration: if nothing is pending.
            TimeoutError: if no result is ready in time; with ``ignore_if_timedout`` the oldest
                pending call is dropped as well.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        by_ref = {}
        for key, (index, _) in self._future_to_actor.items():
            for ref in _refs_of(self._index_to_future[index]):
                by_ref[ref] = index
        done, _ = api.wait(list(by_ref), num_returns=1, timeout=timeout)
        if done:
            index = by_ref[done[0]]
        elif ignore_if_timedout:
            # Ray fails here (no call to drop is chosen); the oldest is the one a caller would
            # have waited for first.
            index = min(self._index_to_future)
        else:
            raise TimeoutError(_TIMED_OUT)
        self._next_return_index = max(self._next_return_index, index + 1)
        return self._take(index, self._index_to_future[index], bool(done))

    def _take(self, index: int, future, ready: bool):
        del self._index_to_future[index]
        if index == self._next_return_index:
            self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(future))
        if not ready:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMED_OUT}. The task {future} has been ignored.")
        alive = True
        try:
            return api.get(future)
        except ActorDiedError:
            # A dead actor never goes back to the idle set, or submit() would keep picking it.
            alive = False
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor, alive: bool = True):
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.pop(0))

    # ------------------------------------------------------------------ membership

    def has_free(self) -> bool:
        """Whether an actor is idle and no submitted value is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self):
        """Removes an idle actor from the pool and returns it; None if none is free."""
        if self.has_free():
            return self._idle_actors.pop()
        return None

    def push(self, actor):
        """Adds an actor to the pool (it starts on a waiting value at once, if any).

        Raises:
            ValueError: if the actor is in the pool already.
        """
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)
