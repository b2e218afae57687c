"""Ray 2.60's task states and task types (`ray.core.generated.common_pb2.TaskStatus`,
`TaskType`), by number, as task events carry them on the wire.

Ray sorts a task's events by these numbers and names the last one its state, so a task that
failed after it ran is FAILED even if its RUNNING event arrived later: the same rule here.
"""

from __future__ import annotations

NIL = 0
PENDING_ARGS_AVAIL = 1
PENDING_NODE_ASSIGNMENT = 2
PENDING_OBJ_STORE_MEM_AVAIL = 3
PENDING_ARGS_FETCH = 4
SUBMITTED_TO_WORKER = 5
PENDING_ACTOR_TASK_ARGS_FETCH = 6
PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY = 7
RUNNING = 8
RUNNING_IN_RAY_GET = 9
RUNNING_IN_RAY_WAIT = 10
FINISHED = 11
FAILED = 12
GETTING_AND_PINNING_ARGS = 13

STATE_NAMES = {
    NIL: "NIL",
    PENDING_ARGS_AVAIL: "PENDING_ARGS_AVAIL",
    PENDING_NODE_ASSIGNMENT: "PENDING_NODE_ASSIGNMENT",
    PENDING_OBJ_STORE_MEM_AVAIL: "PENDING_OBJ_STORE_MEM_AVAIL",
    PENDING_ARGS_FETCH: "PENDING_ARGS_FETCH",
    SUBMITTED_TO_WORKER: "SUBMITTED_TO_WORKER",
    PENDING_ACTOR_TASK_ARGS_FETCH: "PENDING_ACTOR_TASK_ARGS_FETCH",
    PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY: "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY",
    RUNNING: "RUNNING",
    RUNNING_IN_RAY_GET: "RUNNING_IN_RAY_GET",
    RUNNING_IN_RAY_WAIT: "RUNNING_IN_RAY_WAIT",
    FINISHED: "FINISHED",
    FAILED: "FAILED",
    GETTING_AND_PINNING_ARGS: "GETTING_AND_PINNING_ARGS",
}
TERMINAL = (FINISHED, FAILED)

NORMAL_TASK = 0
ACTOR_CREATION_TASK = 1
ACTOR_TASK = 2
DRIVER_TASK = 3
TYPE_NAMES = {
    NORMAL_TASK: "NORMAL_TASK",
    ACTOR_CREATION_TASK: "ACTOR_CREATION_TASK",
    ACTOR_TASK: "ACTOR_TASK",
    DRIVER_TASK: "DRIVER_TASK",
}

# Ray's ErrorType names for the errors a task can end with (common.proto); an error of a class
# not listed ran the task and raised, Ray's TASK_EXECUTION_EXCEPTION.
ERROR_TYPES = {
    "WorkerCrashedError": "WORKER_DIED",
    "ActorDiedError": "ACTOR_DIED",
    "ActorUnavailableError": "ACTOR_UNAVAILABLE",
    "TaskCancelledError": "TASK_CANCELLED",
    "RuntimeEnvSetupError": "RUNTIME_ENV_SETUP_FAILED",
    "ObjectStoreFullError": "OBJECT_STORE_FULL",
    "OutOfMemoryError": "OUT_OF_MEMORY",
    "NodeDiedError": "NODE_DIED",
    "TaskUnschedulableError": "TASK_UNSCHEDULABLE_ERROR",
    "ActorUnschedulableError": "ACTOR_UNSCHEDULABLE_ERROR",
    "ObjectLostError": "OBJECT_LOST",
    "ObjectReconstructionFailedError": "OBJECT_UNRECONSTRUCTABLE",
}
TASK_EXECUTION_EXCEPTION = "TASK_EXECUTION_EXCEPTION"


def error_type_of(class_name: str) -> str:
    return ERROR_TYPES.get(class_name, TASK_EXECUTION_EXCEPTION)
