"""The Ray Core API: remote, put/get/wait, cancel, cluster information and actors; `init` and
`shutdown` live in `_driver_init.py` and are re-exported here."""

from __future__ import annotations

from typing import Any

from zray._config import config
from zray._fast import scan_refs
from zray._private.wire import protocol as P
from zray._private.common.bundles import without_groups
from zray._private.core import runtime
from zray._private.core.generators import ObjectRefGenerator
from zray.object_ref import ObjectRef
from zray.remote_function import RemoteFunction
from zray._driver_init import init, is_initialized, shutdown  # noqa: F401  (zray.api.init)

# ---------------------------------------------------------------------- remote


def remote(*args, **kwargs):
    """Makes a function a remote function (a task) or a class an actor class.

    Use it bare (``@remote``) or with options (``@remote(num_cpus=2, num_returns=2)``).
    ``f.remote(*args)`` then runs the function on the cluster and returns an ``ObjectRef``
    to its result at once (a list of them with ``num_returns`` > 1);
    ``Cls.remote(*args)`` starts an actor: a worker process holding one instance, whose
    methods are called with ``handle.method.remote(*args)``, one at a time in submission
    order unless ``max_concurrency`` says otherwise. ``ObjectRef`` arguments are passed
    to the function as the values they stand for, once those exist.

    Task options: ``num_cpus`` (default 1), ``num_gpus``, ``resources``, ``memory``,
    ``num_returns``, ``max_retries`` (default 3: reruns if the worker dies),
    ``retry_exceptions``, ``scheduling_strategy``, ``name``. Actor options: ``num_cpus``,
    ``num_gpus``, ``resources``, ``name``, ``namespace``, ``lifetime``, ``get_if_exists``,
    ``max_restarts``, ``max_task_retries``, ``max_concurrency``, ``concurrency_groups``,
    ``scheduling_strategy``. ``.options(...)`` overrides them for one call.
    """
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError(
            "The @remote decorator must be applied either with no arguments and "
            "no parentheses, or with keyword arguments only, e.g. "
            "@remote(num_cpus=1)."
        )

    def decorator(function_or_class):
        return _make_remote(function_or_class, kwargs)

    return decorator


def _make_remote(target, options):
    import inspect

    if inspect.isclass(target):
        from zray.actor import ActorClass

        return ActorClass(target, options)
    if not callable(target):
        raise TypeError("The @remote decorator must be applied to a function or a class.")
    return RemoteFunction(target, options)


# ---------------------------------------------------------------------- objects


def put(value: Any, *, _owner=None, _tensor_transport: str | None = None) -> ObjectRef:
    """Stores ``value`` in the object store and returns an ``ObjectRef`` to it.

    The value is serialized once; large values (numpy arrays, bytes, Arrow data) go to the
    node's shared memory, where every process on the node reads them without a copy. The
    object lives while any process holds a reference to it. Putting an ``ObjectRef`` is an
    error (wrap it in a list to store the ref itself).
    """
    if runtime.client is not None:
        return runtime.client.api("put", value)
    return runtime.require_connected().put(value)


def get(object_refs, *, timeout: float | None = None, _use_object_store: bool = False):
    """Returns the value of an ``ObjectRef``, or a list of values for a list of refs, waiting
    until they exist (and fetching them from other nodes).

    Numpy arrays in shared memory come back as read-only views: no copy is made. If the task
    that makes a value failed, ``get`` raises its error: a ``RayTaskError`` that is also an
    instance of the original exception's class, with the remote traceback.

    Args:
        object_refs: An ``ObjectRef`` or a list of them.
        timeout: Seconds to wait at most; ``None`` waits as long as it takes.

    Raises:
        GetTimeoutError: if ``timeout`` passed before every value existed.
        RayTaskError: if a task raised; TaskCancelledError, WorkerCrashedError,
            ActorDiedError, ObjectLostError for the other ways a value can fail to exist.
    """
    client = runtime.client
    core = runtime.require_connected() if client is None else None
    single = isinstance(object_refs, ObjectRef)
    if single:
        refs = [object_refs]
    elif isinstance(object_refs, (list, tuple)):
        refs = list(object_refs)
        for ref in refs:
            if not isinstance(ref, ObjectRef):
                raise TypeError(
                    f"Attempting to call `get` on the value {ref}, which is not an ray.ObjectRef."
                )
    else:
        raise ValueError(
            f"Invalid type of object refs, {type(object_refs)}, is given. 'object_refs' must "
            "either be an ObjectRef or a list of ObjectRefs. "
        )
    _check_timeout(timeout)
    if client is not None:
        return client.api("get", object_refs, timeout=timeout)
    values = core.get(refs, timeout)
    return values[0] if single else values


def wait(
    ray_waitables, *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True
):
    """Waits until ``num_returns`` of the given refs are ready, or ``timeout`` passed.

    Returns ``(ready, not_ready)``: two lists of the refs, in the order given, ``ready``
    holding at most ``num_returns``. A ref is ready once its value (or its error) exists;
    with ``fetch_local`` (the default) also once it is on this node, and waiting starts
    fetching it here. ``timeout=None`` waits as long as it takes; ``0`` only looks.
    """
    client = runtime.client
    core = runtime.require_connected() if client is None else None
    if isinstance(ray_waitables, ObjectRef):
        raise TypeError(
            "wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator, "
            "got a single ray.ObjectRef " + repr(ray_waitables)
        )
    if not isinstance(ray_waitables, (list, tuple)):
        raise TypeError(
            "wait() expected a list of ray.ObjectRef or ray.ObjectRefGenerator, "
            f"got {type(ray_waitables)}"
        )
    refs = list(ray_waitables)
    streams = False
    # Plain refs only (the usual case): whether they are distinct and how many are not here
    # yet, in one compiled pass (a wait on 1,000 ready refs is a benchmark row).
    scan = scan_refs(refs, ObjectRef, core.memory_store._entries) if client is None else None
    if scan is not None:
        if not scan[0]:
            raise ValueError("Wait requires a list of unique object refs.")
    else:
        for ref in refs:
            if type(ref) is not ObjectRef:
                if isinstance(ref, ObjectRefGenerator):
                    streams = True
                elif not isinstance(ref, ObjectRef):
                    raise TypeError(
                        "wait() expected a list of ray.ObjectRef or "
                        f"ray.ObjectRefGenerator, got list containing {type(ref)}"
                    )
    # A ray:// client's refs may not know their ids yet: its session checks them instead.
    if client is None and scan is None:
        distinct = len(set(refs)) if streams else len({ref._id for ref in refs})
        if distinct != len(refs):
            raise ValueError("Wait requires a list of unique object refs.")
    if not isinstance(num_returns, int) or isinstance(num_returns, bool) or num_returns <= 0:
        raise ValueError("Invalid number of objects to return %s." % (num_returns,))
    if num_returns > len(refs):
        raise ValueError(
            "num_returns cannot be greater than the number of objects provided to ray.wait."
        )
    _check_timeout(timeout)
    if client is not None:
        return client.wait(refs, num_returns, timeout, fetch_local)
    if streams:
        return _wait_with_generators(core, refs, num_returns, timeout, fetch_local)
    if scan is not None and not scan[1]:
        return core.wait(refs, num_returns, timeout, fetch_local, all_here=True)
    return core.wait(refs, num_returns, timeout, fetch_local)


def _wait_with_generators(core, waitables, num_returns, timeout, fetch_local):
    """A generator is ready when next() would not block: its next ref arrived, or it ended.
    Checked every few milliseconds (streams end without an object to wait on)."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    plain = [w for w in waitables if isinstance(w, ObjectRef)]
    while True:
        ready_refs = set(core.wait(plain, len(plain), 0, fetch_local)[0]) if plain else set()
        ready = [
            w
            for w in waitables
            if (w in ready_refs if isinstance(w, ObjectRef) else w.next_ready() or w.is_finished())
        ]
        if len(ready) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            ready = ready[:num_returns]
            chosen = set(map(id, ready))
            return ready, [w for w in waitables if id(w) not in chosen]
        time.sleep(0.002)


def _check_timeout(timeout):
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise TypeError(f"timeout must be a number or None, got {timeout!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"'timeout' must be a non-negative number or None, got {timeout}")


def cancel(ray_waitable, *, force: bool = False, recursive: bool = True):
    """Cancels the task or actor call that makes ``ray_waitable``; ``get`` on it then raises
    ``TaskCancelledError``. Cancelled work is not retried.

    A task not started yet never runs. A running task gets a ``KeyboardInterrupt``, or with
    ``force=True`` its worker is killed (``get`` raises ``WorkerCrashedError``). An actor
    call not started yet never runs; a running one is not interrupted but sees
    ``get_runtime_context().is_canceled()`` become true, except in an async actor, where
    its asyncio task is cancelled. ``force=True`` is an error for actor calls (use
    ``kill``). With ``recursive`` (the default), the tasks and actor calls the cancelled
    task submitted are cancelled too. A finished task is left as it is.
    """
    if runtime.client is not None:
        return runtime.client.api("cancel", ray_waitable, force=force, recursive=recursive)
    core = runtime.require_connected()
    if isinstance(ray_waitable, ObjectRefGenerator):  # its task: the stream then ends
        ray_waitable = ray_waitable.completed()
    if not isinstance(ray_waitable, ObjectRef):
        raise TypeError(
            "ray.cancel() only supported for object refs. For actors, try ray.kill(). "
            f"Got: {type(ray_waitable)}."
        )
    task_id = ray_waitable.binary()[:24]
    if force and core.actor_submitter.owns_call(task_id):
        raise ValueError("force=True is not supported for actor tasks.")
    core.cancel_task(task_id, force, recursive)


# ---------------------------------------------------------------------- cluster


def nodes() -> list:
    """One dict per node the cluster has known, dead ones included: ``NodeID``, ``Alive``,
    ``NodeManagerAddress``, ``Resources`` and Ray's other keys."""
    if runtime.client is not None:
        return runtime.client.api("nodes")
    core = runtime.require_connected()
    reply, _ = core.requests.call(core.head_address, P.GetNodes(True), config.rpc_timeout_s)
    return [_ray_node_dict(n) for n in reply.nodes]


def _ray_node_dict(node: dict) -> dict:
    node_id = node["node_id"].hex()
    address = node["address"]
    return {
        "NodeID": node_id,
        "Alive": node["alive"],
        "NodeManagerAddress": node["ip"],
        "NodeManagerHostname": node["hostname"],
        "NodeManagerPort": _port_of(address),
        "ObjectManagerPort": _port_of(address),
        "ObjectStoreSocketName": address,
        "RayletSocketName": address,
        "MetricsExportPort": node.get("metrics_export_port", -1),
        "MetricsAgentPort": 0,
        "DashboardAgentListenPort": 0,
        "NodeName": node["ip"],
        "RuntimeEnvAgentPort": 0,
        "DeathReason": 0 if node["alive"] else 1,
        "DeathReasonMessage": node.get("death_reason", ""),
        "alive": node["alive"],
        "Resources": without_groups(node["resources"]),
        "Labels": {"ray.io/node-id": node_id},
    }


def _port_of(address: str) -> int:
    tail = address.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def cluster_resources() -> dict:
    """The resources of all live nodes together, e.g. ``{"CPU": 8.0, "memory": ...}``."""
    return _sum_resources("resources")


def available_resources() -> dict:
    """The resources of all live nodes not held by tasks and actors right now (as of the
    nodes' last report); a resource none is free of is left out."""
    return _sum_resources("available")


def _sum_resources(field: str) -> dict:
    if runtime.client is not None:
        name = "cluster_resources" if field == "resources" else "available_resources"
        return runtime.client.api(name)
    core = runtime.require_connected()
    reply, _ = core.requests.call(core.head_address, P.GetNodes(False), config.rpc_timeout_s)
    total: dict = {}
    for node in reply.nodes:
        for name, amount in without_groups(node[field]).items():
            total[name] = total.get(name, 0.0) + amount
    return {name: amount for name, amount in total.items() if amount > 0}


def get_gpu_ids() -> list:
    """The ids of the GPUs the running task or actor holds (also its CUDA_VISIBLE_DEVICES);
    empty in a driver and for work that asked for no GPU."""
    if runtime.client is not None:
        return []  # a ray:// driver holds no GPU, as a driver never does
    return list(runtime.require_connected().gpu_ids)


# ---------------------------------------------------------------------- actors


def get_actor(name: str, namespace: str | None = None):
    """A handle to the live actor named ``name`` in ``namespace`` (default: this job's).

    Raises:
        ValueError: if no live actor has that name there.
    """
    from zray.actor import _lookup

    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    if namespace is not None and not isinstance(namespace, str):
        raise TypeError("namespace must be None or a string")
    if runtime.client is not None:
        return runtime.client.api("get_actor", name, namespace)
    core = runtime.require_connected()
    handle = _lookup(core, name, namespace if namespace is not None else core.current_namespace())
    if handle is None:
        raise ValueError(
            f"Failed to look up actor with name '{name}'. This could because 1. You are trying "
            "to look up a named actor you didn't create. 2. The named actor died. 3. You did "
            "not use a namespace matching the namespace of the actor."
        )
    return handle


def kill(actor, *, no_restart: bool = True):
    """Ends an actor at once, without waiting for its calls: running and queued calls fail
    with ``ActorDiedError``, as do later calls through any handle. With
    ``no_restart=False`` an actor with ``max_restarts`` left is restarted instead."""
    from zray.actor import ActorHandle

    if runtime.client is not None:
        from zray.util.client.worker import ClientActorHandle

        if isinstance(actor, ClientActorHandle):
            return runtime.client.api("kill", actor, no_restart=no_restart)
    if not isinstance(actor, ActorHandle):
        raise ValueError(
            "ray.kill() only supported for actors. For tasks, try ray.cancel(). "
            f"Got: {type(actor)}."
        )
    runtime.require_connected().actor_submitter.kill(actor._actor_id, no_restart)
