"""What code running in a driver or worker sees of itself: the task it runs, its name and the
resources it holds (get_runtime_context, put ids, log prefixes)."""

from __future__ import annotations

import contextvars

_task_id: contextvars.ContextVar = contextvars.ContextVar("zray_task_id", default=None)
_task_name: contextvars.ContextVar = contextvars.ContextVar("zray_task_name", default="")
_task_resources: contextvars.ContextVar = contextvars.ContextVar(
    "zray_task_resources", default=None
)
# "<group hex>:<capture 0|1>" while a task placed in a placement group runs, else "".
_placement_group: contextvars.ContextVar = contextvars.ContextVar(
    "zray_placement_group", default=""
)


class TaskContext:
    """What is running here: the task id, name and the resources it holds. Kept in context
    variables rather than thread-locals: each thread starts empty, as with threading.local,
    and each asyncio task of an async actor has its own, so a call that awaits still sees its
    own id after another call ran on the same loop thread."""

    __slots__ = ()

    task_id = property(lambda self: _task_id.get(), lambda self, value: _task_id.set(value))
    name = property(lambda self: _task_name.get(), lambda self, value: _task_name.set(value))
    resources = property(
        lambda self: _task_resources.get(), lambda self, value: _task_resources.set(value)
    )
    placement_group = property(
        lambda self: _placement_group.get(), lambda self, value: _placement_group.set(value)
    )

    def snapshot(self) -> tuple:
        """All of it, for code that runs another task on this thread and then resumes."""
        return _task_id.get(), _task_name.get(), _task_resources.get(), _placement_group.get()

    def restore(self, snapshot: tuple):
        task_id, name, resources, placement_group = snapshot
        _task_id.set(task_id)
        _task_name.set(name)
        _task_resources.set(resources)
        _placement_group.set(placement_group)
