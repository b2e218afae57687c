"""Which task, job, namespace and default actor lifetime the code on this thread runs under: put
ids, the runtime context and actor creation read them. Drivers know their own; workers serve
every job, so theirs come from the running task (and the head, once per job).

A mixin of CoreWorker (core_worker.py)."""

from __future__ import annotations

from zray._config import config
from zray._fast import TASK_ID_SIZE, random_id
from zray._private.core.runtime import DRIVER
from zray._private.wire import protocol as P


class CurrentContext:
    def current_task_id(self) -> bytes:
        """The task running on this thread; outside any task, the process's own: the driver's
        task id, an actor's creation task, or a worker's idle id. Put ids derive from it, so
        it must differ between processes (every worker of a job would otherwise put the same
        ids, all numbered from 1)."""
        task_id = self.context.task_id
        if task_id is not None:
            return task_id
        if self.mode == DRIVER:
            return self.driver_task_id
        host = self.actor_host
        if host is not None:
            return host.creation_task_id
        if self._idle_task_id is None:
            self._idle_task_id = random_id(8) + b"\xff" * (TASK_ID_SIZE - 12) + b"\x00" * 4
        return self._idle_task_id

    def current_job_id(self) -> bytes:
        """The job of the code running on this thread. Workers serve every job, so theirs
        comes from the running task: the last bytes of a task id (and of an actor id) are its
        job's id, as in Ray."""
        if self.mode == DRIVER:
            return self.job_id
        return self.current_task_id()[-4:]

    def current_namespace(self) -> str:
        """The namespace of the running code's job (asked of the head once per job)."""
        if self.mode == DRIVER:
            return self.namespace
        return self._job_info()[0]

    def current_default_actor_lifetime(self) -> str:
        """What `lifetime=None` means for an actor the running code creates: its job's
        JobConfig(default_actor_lifetime), as in Ray."""
        if self.mode == DRIVER:
            return self.default_actor_lifetime
        return self._job_info()[1]

    def _job_info(self) -> tuple[str, str]:
        job_id = self.current_job_id()
        info = self._job_infos.get(job_id)
        if info is None:
            reply, _ = self.requests.call(
                self.head_address, P.GetJobInfo(job_id), config.rpc_timeout_s
            )
            if isinstance(reply, P.JobRegistered):
                info = (reply.namespace, reply.default_actor_lifetime)
            else:
                info = ("", "non_detached")
            self._job_infos[job_id] = info
        return info
