"""``as_completed`` and ``map_unordered``: results in the order they finish, a batch at a time."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Sequence

from zray import api

# As Ray: a few results per wait, so a stream of small tasks costs fewer round trips than one
# wait per result.
DEFAULT_CHUNK_SIZE = 10
DEFAULT_BACKPRESSURE_SIZE = 100


def _check(chunk_size: int, kwargs: dict) -> None:
    if chunk_size < 1:
        raise ValueError("`chunk_size` must be >= 1")
    if "num_returns" in kwargs:
        raise ValueError("Use the `chunk_size` argument instead of `num_returns`.")


def _next_batch(refs: list, chunk_size: int, yield_obj_refs: bool, kwargs: dict):
    """(ready values or refs, refs still pending) after one ``wait`` for up to ``chunk_size``."""
    ready, pending = api.wait(refs, num_returns=min(chunk_size, len(refs)), **kwargs)
    return (ready if yield_obj_refs else api.get(ready)), pending


def as_completed(
    refs: Sequence, *, chunk_size: int = DEFAULT_CHUNK_SIZE, yield_obj_refs: bool = False, **kwargs
) -> Iterator[Any]:
    """Yields the values of ``refs`` (or, with ``yield_obj_refs``, the refs) as they become
    ready, waiting for up to ``chunk_size`` at a time; ``kwargs`` go to ``wait`` (``timeout``,
    ``fetch_local``). Within a batch, refs keep their submission order."""
    _check(chunk_size, kwargs)
    refs = list(refs)
    while refs:
        values, refs = _next_batch(refs, chunk_size, yield_obj_refs, kwargs)
        yield from values


def map_unordered(
    fn,
    items: Iterable[Any],
    *,
    backpressure_size: Optional[int] = DEFAULT_BACKPRESSURE_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    yield_obj_refs: bool = False,
    **kwargs,
) -> Iterator[Any]:
    """Calls ``fn.remote(item)`` for each item, with at most ``backpressure_size`` calls in
    flight (None: no bound), and yields the results as they finish."""
    if backpressure_size is None:
        limit = float("inf")
    elif backpressure_size <= 0:
        raise ValueError("backpressure_size must be positive.")
    else:
        limit = backpressure_size
    _check(chunk_size, kwargs)
    refs: list = []
    for item in items:
        refs.append(fn.remote(item))
        if len(refs) >= limit:
            values, refs = _next_batch(refs, chunk_size, yield_obj_refs, kwargs)
            yield from values
    yield from as_completed(refs, chunk_size=chunk_size, yield_obj_refs=yield_obj_refs, **kwargs)
