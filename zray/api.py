"""The Ray Core API: init/shutdown, remote, put/get/wait, cancel and cluster information."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any

from zray._config import config
from zray._fast import random_id, scan_refs, WORKER_ID_SIZE
from zray._private.wire import protocol as P
from zray._private.common.bundles import without_groups
from zray._private.core import runtime
from zray._private.core.core_worker import DRIVER, CoreWorker
from zray._private.core.generators import ObjectRefGenerator
from zray.object_ref import ObjectRef
from zray.remote_function import RemoteFunction

logger = logging.getLogger("zray")

_lock = threading.RLock()
_embedded = None
_warned: set = set()

# Accepted for compatibility; zray has no counterpart (yet) and they do not change what a
# program computes, so they only warn once.
_IGNORED_INIT_ARGS = (
    "labels",
    "local_mode",
    "logging_format",
    "logging_config",
    "enable_resource_isolation",
    "cgroup_path",
    "system_reserved_cpu",
    "system_reserved_memory",
    "proxy_server_url",
)


class _Unset:
    def __repr__(self):
        return "None"


def init(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: dict | None = None,
    labels: dict | None = None,
    object_store_memory: int | None = None,
    local_mode: bool = False,
    ignore_reinit_error: bool = False,
    include_dashboard: bool | None = None,
    dashboard_host: str = "127.0.0.1",
    dashboard_port: int | None = None,
    job_config=None,
    configure_logging: bool = True,
    logging_level: int = "info",
    logging_format: str | None = None,
    logging_config=None,
    log_to_driver: bool | None = None,
    namespace: str | None = None,
    runtime_env: dict | None = None,
    enable_resource_isolation: bool = False,
    cgroup_path: str | None = None,
    system_reserved_cpu: float | None = None,
    system_reserved_memory: int | None = None,
    proxy_server_url: str | None = None,
    **kwargs,
):
    """Connects this process to a cluster, starting a local one if there is none to join.

    Args:
        address: The cluster to connect to: ``"host:port"`` of a head started with
            ``zray start --head``, ``"auto"`` for a cluster running on this machine, or
            ``None``/``"local"`` to start a new single-node cluster inside this program
            (a node daemon and its worker processes, stopped again by ``shutdown()``), or
            ``"ray://host:port"`` (``"zray://..."`` too) to run this program through the
            client server of a head started with ``--ray-client-server-port``: no process
            of the cluster ever connects to this one (needs ``ZRAY_TOKEN``).
        num_cpus, num_gpus: CPUs and GPUs the new local node offers (default: the
            machine's CPUs, no GPUs). Only for a new local cluster.
        resources: Custom resources of the new local node, e.g. ``{"disk": 2}``.
        object_store_memory: Bytes of the new local node's shared-memory object store.
        namespace: The namespace named actors of this job live in; a fresh anonymous one
            if not given.
        ignore_reinit_error: Return quietly, rather than raise, if already connected.
        log_to_driver: Print the stdout and stderr of this job's tasks and actors here.
        logging_level: Level of zray's own log messages in this process.
        The remaining arguments are Ray's; where zray has no counterpart yet and the
        argument would not change what the program computes, it is accepted with a
        warning.

    Returns:
        A dict of addresses (``address_info``, ``node_id``, ``gcs_address``) that can also
        be used as a context manager, which calls ``shutdown()`` on exit.

    Raises:
        RuntimeError: if already connected and ``ignore_reinit_error`` is False, or an
            argument is not one Ray accepts.
        ConnectionError: if the cluster at ``address`` cannot be reached.
    """
    global _embedded
    with _lock:
        if runtime.client is not None or runtime.core is not None:
            if ignore_reinit_error:
                logger.info("Calling zray.init() again after it has already been called.")
                return _context()
            if runtime.client is not None:
                raise RuntimeError(
                    "Ray Client is already connected. Maybe you called "
                    'ray.init("ray://<address>") twice by accident?'
                )
            raise RuntimeError(
                "Maybe you called ray.init twice by accident? This error can be suppressed by "
                "passing in 'ignore_reinit_error=True' or by calling 'ray.shutdown()' prior to "
                "'ray.init()'."
            )
        given = dict(
            labels=labels,
            local_mode=local_mode,
            logging_format=logging_format,
            logging_config=logging_config,
            enable_resource_isolation=enable_resource_isolation,
            cgroup_path=cgroup_path,
            system_reserved_cpu=system_reserved_cpu,
            system_reserved_memory=system_reserved_memory,
            proxy_server_url=proxy_server_url,
        )
        defaults = {
            "local_mode": False,
            "dashboard_host": "127.0.0.1",
            "enable_resource_isolation": False,
        }
        for name in _IGNORED_INIT_ARGS:
            if given[name] not in (None, defaults.get(name)):
                _warn_once(name)
        from zray._private.common import runtime_env as RE

        job_config = _job_config(job_config)
        if runtime_env is None:
            runtime_env = job_config.runtime_env or None
        if namespace is None:
            namespace = job_config.ray_namespace
        job_env = RE.parse(runtime_env)  # bad input fails before any process starts
        _check_dashboard_args(include_dashboard, dashboard_host, dashboard_port)
        metrics_export_port = _metrics_port(kwargs.pop("_metrics_export_port", None))
        for name in kwargs:
            if not name.startswith("_"):
                raise RuntimeError(f"Unknown keyword argument(s): {name}")
            _warn_once(name)
        if configure_logging:
            _configure_logging(logging_level)
        if resources is not None and not isinstance(resources, dict):
            raise TypeError("resources must be a dict of resource name to quantity")
        for reserved in ("CPU", "GPU"):
            if resources and reserved in resources:
                raise ValueError(
                    f"Use the 'num_{reserved.lower()}s' argument instead of "
                    f"resources={{'{reserved}': ...}}."
                )
        from zray._private.common import cluster_info
        from zray.util.client import is_client_address

        if is_client_address(address) or (address is None and is_client_address(config.address)):
            for name, value in (
                ("num_cpus", num_cpus),
                ("num_gpus", num_gpus),
                ("resources", resources),
                ("object_store_memory", object_store_memory),
            ):
                if value is not None:
                    raise ValueError(
                        f"When connecting to an existing cluster, {name} must not be provided."
                    )
            if log_to_driver is None:
                log_to_driver = config.log_to_driver
            return _client_init(address or config.address, namespace, runtime_env, log_to_driver)
        fallback_to_local = False
        if address in ("", "local"):
            address = None
        else:
            address, fallback_to_local = cluster_info.bootstrap_address(address)
        core = None
        if address is not None:
            for name, value in (
                ("num_cpus and num_gpus", num_cpus),
                ("num_cpus and num_gpus", num_gpus),
                ("resources", resources),
                ("labels", labels),
                ("object_store_memory", object_store_memory),
            ):
                if value is not None:  # the cluster's nodes already have their resources
                    raise ValueError(
                        f"When connecting to an existing cluster, {name} must not be provided."
                    )
            logger.info("Connecting to existing zray cluster at address: %s...", address)
            if include_dashboard is not None or dashboard_port is not None:
                # As Ray: the cluster's head already decided about its dashboard.
                logger.warning(
                    "include_dashboard and dashboard_port only apply to a new local cluster; "
                    "the cluster at %s has its own dashboard settings",
                    address,
                )
            try:
                node, session_dir, creds = cluster_info.attach(address)
            except ConnectionError as exc:
                if not fallback_to_local:
                    raise
                # The recorded cluster's node lives but its head does not answer: as for a
                # record left by a crash, a program that named no cluster gets a new one.
                logger.warning(
                    "Failed to connect to the cluster `zray start` recorded at %s "
                    "(%s); starting a new local cluster. `zray stop` clears the "
                    "record.",
                    address,
                    exc,
                )
            else:
                core = _connect(
                    node["address"], session_dir, namespace, creds, node["ip"], job_config
                )
                if metrics_export_port is not None:  # as in Ray: the nodes already run
                    _warn_once("_metrics_export_port")
        if core is None:
            from zray._private.core.driver import DashboardOptions, EmbeddedNode
            from zray._private.wire.security import Credentials, new_token

            creds = Credentials(config.token or new_token(), config.encrypt)
            dashboard = DashboardOptions(include_dashboard, dashboard_host, dashboard_port)
            _embedded = EmbeddedNode(
                creds,
                num_cpus,
                num_gpus,
                resources,
                object_store_memory,
                metrics_export_port=metrics_export_port,
                dashboard=dashboard,
            )
            info = _embedded.info
            if info.get("dashboard_address"):
                logger.info(
                    "Started a local zray instance. View the dashboard at http://%s/?token=%s",
                    info["dashboard_address"],
                    creds.token,
                )
            try:
                core = _connect(
                    info["node_address"],
                    info["session_dir"],
                    namespace,
                    creds,
                    job_config=job_config,
                )
            except BaseException:
                _embedded.stop()
                _embedded = None
                raise
        if job_env:
            try:
                from zray._private.common.packaging import upload

                core.runtime_env = upload(core, job_env)
            except BaseException:
                core.shutdown()
                if _embedded is not None:
                    _embedded.stop()
                    _embedded = None
                raise
        if log_to_driver is None:
            log_to_driver = config.log_to_driver
        if log_to_driver:
            core._log_sink = _print_worker_lines
        runtime.core = core
        atexit.register(shutdown)
        return RayContext(core)


def _client_init(address: str, namespace, runtime_env, log_to_driver: bool):
    """init("ray://host:port"): no core worker here; every call goes to a session on the
    head's client server (zray/util/client/)."""
    from zray.util.client.connection import connect_client

    runtime.client = connect_client(address, namespace, runtime_env, log_to_driver)
    atexit.register(shutdown)
    return _context()


def _context():
    client = runtime.client
    if client is None:
        return RayContext(runtime.core)
    from zray.util.client.connection import ClientContext

    return ClientContext(client, shutdown)


def _check_dashboard_args(include_dashboard, dashboard_host, dashboard_port):
    if include_dashboard is not None and not isinstance(include_dashboard, bool):
        raise TypeError(f"include_dashboard must be True, False or None, not {include_dashboard!r}")
    if not isinstance(dashboard_host, str) or not dashboard_host:
        raise TypeError(f"dashboard_host must be a host name or address, not {dashboard_host!r}")
    if dashboard_port is not None and (
        isinstance(dashboard_port, bool)
        or not isinstance(dashboard_port, int)
        or not 0 <= dashboard_port <= 65535
    ):
        raise ValueError(f"dashboard_port must be a port number (0-65535), not {dashboard_port!r}")


def _connect(
    node_address: str,
    session_dir: str,
    namespace: str | None,
    creds,
    node_ip: str = "127.0.0.1",
    job_config=None,
) -> CoreWorker:
    import uuid

    worker_id = random_id(WORKER_ID_SIZE)
    job_config = job_config or _job_config(None)
    metadata = {str(k): str(v) for k, v in job_config.metadata.items()}
    core = CoreWorker(
        DRIVER,
        node_address,
        b"\x00" * 4,
        worker_id,
        session_dir,
        creds,
        namespace or str(uuid.uuid4()),
        node_ip,
    )
    try:
        reply, _ = core.requests.call(
            core.head_address,
            P.RegisterJob(
                worker_id,
                core.namespace,
                os.getpid(),
                metadata,
                job_config._default_actor_lifetime,
            ),
            config.rpc_timeout_s,
        )
    except BaseException:
        core.shutdown()
        raise
    core.job_id = reply.job_id
    core.default_actor_lifetime = job_config._default_actor_lifetime
    core.job_metadata = metadata
    core.driver_task_id = core._driver_task_id(reply.job_id)
    return core


# zray.experimental.tqdm_ray's RAY_TQDM_MAGIC, without importing tqdm into every driver.
_TQDM_MAGIC = "__ray_tqdm_magic_token__"


def _print_worker_lines(msg):
    lines = msg.lines
    if any(_TQDM_MAGIC in line for line in lines):  # bars' states: drawn, not printed
        from zray.experimental import tqdm_ray

        lines = tqdm_ray.take_progress_lines(lines)
        if not lines:
            return
    tqdm_ray = sys.modules.get("zray.experimental.tqdm_ray")
    bars = tqdm_ray.drawing() if tqdm_ray is not None else None
    stream = sys.stderr if msg.stream == "stderr" else sys.stdout
    try:
        if bars is not None:
            bars.hide_bars()
        stream.write("".join(f"{msg.prefix} {line}\n" for line in lines))
        stream.flush()
    except (ValueError, OSError):
        pass  # the driver's stream was closed (interpreter exit)
    finally:
        if bars is not None:
            bars.unhide_bars()


def _configure_logging(level):
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    zray_logger = logging.getLogger("zray")
    zray_logger.setLevel(level)
    if not zray_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s")
        )
        zray_logger.addHandler(handler)
        zray_logger.propagate = False


def _metrics_port(port):
    if port is None:
        return None
    if type(port) is not int or not 0 <= port <= 65535:
        raise ValueError(f"_metrics_export_port must be a port number (int), got {port!r}")
    return port


def _job_config(job_config):
    """`init`'s job_config, checked: a field zray would not honour is an error, not ignored."""
    from zray.job_config import JobConfig

    if job_config is None:
        return JobConfig()
    if not isinstance(job_config, JobConfig):
        raise TypeError(f"job_config must be a zray.job_config.JobConfig, got {job_config!r}")
    unsupported = job_config._unsupported()
    if unsupported:
        raise ValueError(f"JobConfig({unsupported[0]}=...) is not supported by zray")
    if job_config.jvm_options:
        _warn_once("job_config.jvm_options")
    if job_config.py_logging_config is not None:
        _warn_once("job_config.py_logging_config")
    return job_config


def _warn_once(name: str):
    if name not in _warned:
        _warned.add(name)
        logger.warning(
            "zray.init(%s=...) is accepted for Ray compatibility but has no effect yet", name
        )


def shutdown(*, wait_for_processes: bool = False, _exiting_interpreter: bool = False):
    """Disconnects from the cluster; a cluster that ``init()`` started is stopped with every
    process, socket and shared-memory segment it made. Objects this program owns are freed
    and its non-detached actors end. ``init()`` may be called again afterwards."""
    global _embedded
    with _lock:
        client = runtime.client
        if client is not None:
            runtime.client = None
            client.disconnect()
        core = runtime.core
        if core is not None:
            runtime.core = None
            try:
                core.endpoint.send(core.head_address, P.UnregisterJob(core.job_id))
            except Exception:
                pass
            core.shutdown()
        if _embedded is not None:
            _embedded.stop()
            _embedded = None
        try:
            atexit.unregister(shutdown)
        except Exception:
            pass


def is_initialized() -> bool:
    """True if ``init()`` has connected this process (or it runs as a task or actor)."""
    return runtime.core is not None or runtime.client is not None


def _auto_init():
    with _lock:
        if runtime.core is None:
            init()


runtime.auto_init = _auto_init


class RayContext(dict):
    """What init() returns: a dict of addresses that also works as a context manager."""

    def __init__(self, core):
        super().__init__(
            address_info={
                "node_id": core.node_id.hex(),
                "gcs_address": core.head_address.replace("tcp://", ""),
                "session_dir": core.session_dir,
            },
            node_id=core.node_id.hex(),
            gcs_address=core.head_address.replace("tcp://", ""),
        )
        self.address_info = self["address_info"]
        self.dashboard_url = None
        if _embedded is not None and _embedded.info.get("dashboard_address"):
            self.dashboard_url = _embedded.info["dashboard_address"]
            self.address_info["webui_url"] = self.dashboard_url
        self.python_version = "%d.%d.%d" % sys.version_info[:3]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()

    def disconnect(self):
        shutdown()


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
