"""The process-wide core worker (driver or worker), set by init() or by the worker entry point."""

from __future__ import annotations

DRIVER, WORKER = "driver", "worker"  # what a CoreWorker is (its `mode`)

core = None  # zray._private.core.core_worker.CoreWorker while connected
# zray.util.client.worker.ClientWorker while connected through ray://: no core worker here.
client = None


def require():
    if client is not None:
        raise NotImplementedError(
            "this zray API is not available through a ray:// client connection (it supports "
            "tasks, actors, put/get/wait, cancel, kill, get_actor, nodes, cluster_resources, "
            "available_resources, get_runtime_context, runtime_env and placement groups)"
        )
    if core is None:
        raise RuntimeError("zray is not initialized: call zray.init() (or ray.init()) first")
    return core


auto_init = None  # set by zray.api: Ray starts a local cluster on first use without init()


def require_connected():
    if core is None and client is None and auto_init is not None:
        auto_init()
    return require()
