"""`init`, `shutdown` and `is_initialized`: connecting this process to a cluster (or starting an
embedded one), as a driver or through Ray Client, and letting go of it."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading

from zray._config import config
from zray._fast import random_id, WORKER_ID_SIZE
from zray._private.wire import protocol as P
from zray._private.core import runtime
from zray._private.core.core_worker import DRIVER, CoreWorker

logger = logging.getLogger("zray")

_lock = threading.RLock()
_embedded = None
_warned: set = set()

# Accepted for compatibility; zray has no counterpart (yet) and they do not change what a
# program computes, so they only warn once.
_IGNORED_INIT_ARGS = (
    "labels",
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
    if local_mode:
        # Ray 2.60 dropped it with this error: tasks run in the driver, serially, would change
        # timing and side effects, so it is not accepted with a warning either.
        raise RuntimeError(
            "`local_mode` is no longer supported. For interactive debugging consider using "
            "the Ray distributed debugger."
        )
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
            logging_format=logging_format,
            logging_config=logging_config,
            enable_resource_isolation=enable_resource_isolation,
            cgroup_path=cgroup_path,
            system_reserved_cpu=system_reserved_cpu,
            system_reserved_memory=system_reserved_memory,
            proxy_server_url=proxy_server_url,
        )
        defaults = {
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
        from zray._private.common import submitted_driver

        runtime_env = submitted_driver.apply(job_config, runtime_env)
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
