"""A worker's side of pipelined tasks (docs/design.md, "Pipelined tasks"): when the running
task blocks in get/wait, the tasks its owner queued behind it go back unstarted.

An owner may push short tasks to a worker that is still running one (core/task_pipelining.py).
If the running task then blocks, a task queued behind it could be the very one it waits for,
and would wait for ever; so the executing thread, about to block, reads what its direct
connections hold and answers every `PushTask` queued there with `TasksHandedBack`, and while
it stays blocked it watches those connections and does the same for tasks pushed meanwhile
(the owner stops queuing on this worker once it hears, but pushes already sent arrive).
The owner runs them elsewhere; this worker lent its CPUs to its node, so one is free.
"""

from __future__ import annotations

import threading
from collections import deque
from queue import Empty

from zray._private.wire import protocol as P


class HandBack:
    def __init__(self, executor):
        self.executor = executor
        self.core = executor.core
        self.server = self.core.direct_server
        self.fd = self.server.fileno()

    def applies(self) -> bool:
        """Only the thread executing tasks hands back, and only in a worker that runs tasks
        (an actor's calls are ordered and never pipelined this way)."""
        executor = self.executor
        return threading.get_ident() == executor.main_thread_id and executor.actor is None

    def serve(self):
        """Reads the direct connections (only the executing thread does) and hands back the
        pushed tasks waiting there or in the ZeroMQ queue; other messages keep their place."""
        server = self.server
        server.poll(0)
        ready = server.ready
        back: dict = {}  # connection -> [PushTask]
        if any(type(item[0]) is P.PushTask for item in ready):
            keep = deque()
            for item in ready:
                if type(item[0]) is P.PushTask:
                    back.setdefault(item[2], []).append(item[0])
                else:
                    keep.append(item)
            ready.clear()
            ready.extend(keep)
        over_zeromq = self._take_queued()
        for connection, pushes in back.items():
            msg = P.TasksHandedBack([push.task_id for push in pushes])
            if not connection.send(msg):
                over_zeromq.extend(pushes)  # the owner's connection is gone: try ZeroMQ
        by_owner: dict = {}
        for push in over_zeromq:
            by_owner.setdefault(push.owner_address, []).append(push.task_id)
        for owner_address, task_ids in by_owner.items():
            self.core.endpoint.send(owner_address, P.TasksHandedBack(task_ids))

    def _take_queued(self) -> list:
        """PushTasks the I/O thread queued (pushes that came over ZeroMQ), taken out of the
        queue; whatever else is there goes back in its order."""
        queue = self.core.task_queue
        if queue.empty():
            return []
        items = []
        while True:
            try:
                items.append(queue.get_nowait())
            except Empty:
                break
        pushes = [msg for msg, _payload in items if type(msg) is P.PushTask]
        for item in items:
            if type(item[0]) is not P.PushTask:
                queue.put(item)
        return pushes
