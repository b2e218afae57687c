"""get_runtime_context(): ids and settings of the current driver or worker, as in Ray."""

from __future__ import annotations

from zray._private.core import runtime
from zray._private.common.id_types import (
    ActorID,
    BaseID,
    JobID,
    NodeID,
    PlacementGroupID,  # noqa: F401
    TaskID,
    WorkerID,
)


# Ray 2.60.0's accelerator resource names, in the keys of get_accelerator_ids().
ACCELERATOR_KINDS = ("GPU", "TPU", "NPU", "HPU", "neuron_cores", "RBLN", "FURIOSA", "MBLT", "TTNPU")


class RuntimeContext:
    """What Ray's RuntimeContext offers; ids are hex strings from the get_* methods."""

    def __init__(self, core):
        self._core = core

    def get(self) -> dict:
        context = {"job_id": self.job_id, "node_id": self.node_id, "namespace": self.namespace}
        if self._core.mode == "worker":
            context["task_id"] = self.task_id
        return context

    def get_job_id(self) -> str:
        return self._core.current_job_id().hex()

    @property
    def job_id(self) -> JobID:
        return JobID(self._core.current_job_id())

    def get_node_id(self) -> str:
        return self._core.node_id.hex()

    @property
    def node_id(self) -> NodeID:
        return NodeID(self._core.node_id)

    def get_worker_id(self) -> str:
        return self._core.worker_id.hex()

    def get_task_id(self):
        task_id = self._core.context.task_id
        return task_id.hex() if task_id else None

    @property
    def task_id(self):
        task_id = self._core.context.task_id
        return TaskID(task_id) if task_id else None

    def get_task_name(self):
        return self._core.context.name or None

    def get_task_function_name(self):
        return self._core.context.name or None

    def get_actor_id(self):
        actor_id = self._actor_id()
        return actor_id.hex() if actor_id else None

    @property
    def actor_id(self):
        actor_id = self._actor_id()
        return ActorID(actor_id) if actor_id else None

    def _actor_id(self):
        host = self._core.actor_host
        return host.actor_id if host is not None else None

    def get_actor_name(self):
        host = self._core.actor_host
        return (host.spec.get("name") or None) if host is not None else None

    @property
    def current_actor(self):
        """A handle to the actor this code runs in."""
        host = self._core.actor_host
        if host is None:
            raise RuntimeError("This method is only available in an actor.")
        from zray.actor import handle_from_meta

        return handle_from_meta(host.actor_id, host.spec["handle_meta"])

    @property
    def namespace(self) -> str:
        return self._core.current_namespace()

    @property
    def was_current_actor_reconstructed(self) -> bool:
        host = self._core.actor_host
        return bool(host is not None and host.attempt > 0)

    @property
    def gcs_address(self) -> str:
        return self._core.head_address.replace("tcp://", "")

    def get_session_name(self) -> str:
        import os

        return os.path.basename(self._core.session_dir)

    def get_temp_dir(self) -> str:
        return self._core.session_dir

    def get_node_labels(self) -> dict:
        return {"ray.io/node-id": self.get_node_id()}

    def get_assigned_resources(self) -> dict:
        """What the running task or actor holds: {"CPU": 1.0} for a default task, {} for a
        default actor (placed with a CPU, it runs with none), as in Ray."""
        core = self._core
        assert core.mode == "worker", (
            "This method is only available when the process is a worker. Current mode: 0"
        )
        resources = core.context.resources
        if resources is None and core.actor_host is not None:
            resources = core.actor_host.resources
        from zray._private.common.bundles import (
            original,
        )  # a task in a bundle asks for CPU_group_...

        return {name: float(amount) for name, amount in original(resources or {}).items() if amount}

    def get_resource_ids(self) -> dict:
        return self.get_accelerator_ids()

    def get_accelerator_ids(self) -> dict:
        """The accelerator ids visible to the running task or actor, as strings, for every
        accelerator kind Ray knows (zray assigns GPUs; the others are always empty)."""
        ids = {kind: [] for kind in ACCELERATOR_KINDS}
        ids["GPU"] = [str(i) for i in self._core.gpu_ids]
        return ids

    def get_runtime_env_string(self) -> str:
        """The runtime env of this job (in a driver) or of this task or actor, as JSON."""
        import json

        return json.dumps(self._core.runtime_env, sort_keys=True)

    @property
    def runtime_env(self):
        """The runtime env as a ``zray.runtime_env.RuntimeEnv`` (a dict), working_dir and
        py_modules as the URIs of their uploaded packages, as in Ray."""
        from zray.runtime_env import RuntimeEnv

        return RuntimeEnv(_validate=False, **self._core.runtime_env)

    def _placement_group(self) -> str:
        from zray.util.placement_group import _current

        return _current(self._core)  # "<hex>:<capture>" or ""

    def get_placement_group_id(self):
        """The hex id of the placement group the running task or actor is in, or None."""
        current = self._placement_group()
        return current.split(":")[0] if current else None

    @property
    def current_placement_group_id(self):

        current = self._placement_group()
        return (
            PlacementGroupID.from_hex(current.split(":")[0]) if current else PlacementGroupID.nil()
        )

    def should_capture_child_tasks_in_placement_group(self) -> bool:
        return self._placement_group().endswith(":1")

    def is_canceled(self) -> bool:
        """Whether `cancel()` was called on the task running here: a sync or threaded actor's
        call checks it to stop early (Ray does not interrupt those)."""
        core = self._core
        if core.mode != "worker":
            raise RuntimeError(
                "This method is only available when the process is a worker. Current mode: 0"
            )
        host = core.actor_host
        if host is not None and host.is_async:
            raise RuntimeError("This method is not supported in an async actor.")
        task_id = core.context.task_id
        return task_id is not None and core.cancellations.is_cancelled(task_id)


def get_runtime_context() -> RuntimeContext:
    """What the calling code runs as: its job, node, worker, task and actor ids, namespace,
    the resources it holds and whether it was cancelled."""
    if runtime.client is not None:
        from zray.util.client.runtime_context import client_core_view

        return RuntimeContext(client_core_view(runtime.client))
    return RuntimeContext(runtime.require_connected())
