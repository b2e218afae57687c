"""What a worker does with an exception a task raised, once its error was made of it."""

from __future__ import annotations

import traceback


def release_frames(exc: BaseException) -> None:
    """Drops the locals of the frames `exc`'s traceback holds, once the error's text was taken
    (RayTaskError.from_exception). They may hold arguments' values mapped from the arena (one
    argument fetched before another was found lost), pinning them there; and the traceback is
    in a reference cycle with the executing frame (error -> exc -> traceback -> frame), which
    only the cyclic GC breaks, rarely in an idle worker: the objects stayed in the arena."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:  # the exceptions it was raised from or during hold frames too
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]
