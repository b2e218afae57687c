"""zray: a Ray-compatible distributed runtime. Use it as ``import zray as ray``."""

from zray import exceptions
from zray import actor
from zray import job_config  # noqa: F401  (ray.job_config, as after `import ray`)
from zray.actor import method
from zray.api import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_gpu_ids,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote,
    shutdown,
    wait,
)
from zray._private.core.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from zray.object_ref import ObjectRef
from zray.runtime_context import (
    ActorID,
    JobID,
    NodeID,
    PlacementGroupID,
    TaskID,
    WorkerID,
    get_runtime_context,
)

__version__ = "0.1.0"

__all__ = [
    "ActorID",
    "DynamicObjectRefGenerator",
    "JobID",
    "NodeID",
    "ObjectRef",
    "ObjectRefGenerator",
    "PlacementGroupID",
    "TaskID",
    "WorkerID",
    "available_resources",
    "actor",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "put",
    "remote",
    "shutdown",
    "timeline",
    "util",
    "wait",
]
from zray import util  # noqa: E402  (Ray's ray.util is there after `import ray`)
from zray import runtime_env  # noqa: E402,F401  (ray.runtime_env, as after `import ray`)
from zray.util.state.timeline import timeline  # noqa: E402  (ray.timeline)
