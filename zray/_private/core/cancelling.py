"""ray.cancel in the core worker: cancelling calls this process submitted, and tasks it runs
(with their children when recursive); core/cancellation.py holds the state.

A mixin of CoreWorker (core_worker.py)."""

from __future__ import annotations

from zray._private.core.runtime import WORKER


class Cancelling:
    def on_cancel_task(self, identity, msg, seq, payload):
        if self.mode == WORKER:
            self.cancel_running_here(msg.task_id, msg.force, msg.recursive)

    def cancel_running_here(self, task_id: bytes, force: bool, recursive: bool):
        """Cancels a task this worker runs (or is about to run), and with `recursive` what it
        submitted."""
        children = self.cancellations.children_of(task_id) if recursive else ()
        self.cancellations.cancel(task_id)
        if self._cancel_handler is not None:
            self._cancel_handler(task_id, force)
        for child in children:
            self.cancel_task(child, force, True)

    def cancel_task(self, task_id: bytes, force: bool, recursive: bool):
        """Cancels a task or actor call this process submitted (ray.cancel's semantics)."""
        if self.actor_submitter.owns_call(task_id):
            self.actor_submitter.cancel(task_id, recursive)
        else:
            self.submitter.cancel(task_id, force, recursive)

    def note_submitted(self, task_id: bytes):
        """Remembers, in workers, which running task submitted `task_id`, for recursive
        cancellation."""
        parent = self.context.task_id
        if parent is not None and self.mode == WORKER:
            self.cancellations.note_child(parent, task_id, self._still_pending)

    def _still_pending(self, task_id: bytes) -> bool:
        return task_id in self.submitter.tasks or self.actor_submitter.owns_call(task_id)
