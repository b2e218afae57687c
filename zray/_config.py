"""The one configuration object of zray.

Every tunable lives here with a description; each can be overridden by an environment variable
named ``ZRAY_<FIELD NAME IN CAPITALS>``.  No other module reads ``os.environ`` for settings, so this
file is the complete list of knobs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

ENV_PREFIX = "ZRAY_"
# Ray's own variables that zray honours too (its ZRAY_ twin wins when both are set).
RAY_ALIASES = {
    "address": "RAY_ADDRESS",
    "redis_address": "RAY_REDIS_ADDRESS",
    "redis_password": "RAY_REDIS_PASSWORD",
    "tqdm_patch_print": "RAY_TQDM_PATCH_PRINT",
    "client_reconnect_grace_period": "RAY_CLIENT_RECONNECT_GRACE_PERIOD",
    "job_stop_signal": "RAY_JOB_STOP_SIGNAL",
    "job_stop_wait_time_s": "RAY_JOB_STOP_WAIT_TIME_S",
    "job_start_timeout_seconds": "RAY_JOB_START_TIMEOUT_SECONDS",
    "job_allow_driver_on_worker_nodes": "RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES",
    "override_job_runtime_env": "RAY_OVERRIDE_JOB_RUNTIME_ENV",
    "token": "RAY_AUTH_TOKEN",
    "api_server_address": "RAY_API_SERVER_ADDRESS",
    "job_headers": "RAY_JOB_HEADERS",
    "job_submit_hook": "RAY_JOB_SUBMIT_HOOK",
    "rotation_max_bytes": "RAY_ROTATION_MAX_BYTES",
    "rotation_backup_count": "RAY_ROTATION_BACKUP_COUNT",
    "max_limit_from_data_source": "RAY_MAX_LIMIT_FROM_DATA_SOURCE",
    "oom_grace_period_s": "RAY_oom_grace_period_s",
}


def _setting(default, description: str):
    return field(default=default, metadata={"description": description})


@dataclass
class Config:
    fast: bool = _setting(
        True, "Use the compiled Cython modules in zray/_fast/; 0 selects their pure-Python twins."
    )
    max_inline_bytes: int = _setting(
        100 * 1024,
        "Serialized values up to this size travel inside messages and live in the owner's "
        "in-process store; larger ones go to the node's shared-memory arena.",
    )
    task_rpc_inlined_bytes_limit: int = _setting(
        10 * 2**20,
        "Small values of a call's ObjectRef arguments travel inside the call up to this total "
        "(Ray's setting of the same name); the executing worker asks the owner for the rest. "
        "Results are inlined into the answer up to the same total, larger ones go to the "
        "arena, so no message outgrows what a connection carries.",
    )
    object_store_fraction: float = _setting(
        0.3, "Default object store size as a fraction of total RAM (Ray's default)."
    )
    arena_prefault_bytes: int = _setting(
        512 * 2**20,
        "How much of the arena the node keeps faulted in ahead of the highest object, in the "
        "background, once the first object is stored. Fresh shared-memory pages cost ~30x "
        "more to write than warm ones.",
    )
    same_host_transfer: bool = _setting(
        True,
        "A node pulling an object from another node on the same machine copies it straight out "
        "of that node's shared memory. 0 makes such pulls stream over TCP as between hosts "
        "(to test and measure the cross-host path on one machine).",
    )
    object_transfer_timeout_s: float = _setting(
        30.0,
        "A transfer connection that moves no byte for this long (a source gone silent, or a "
        "copy being forwarded that stalled) is given up; the puller tries another copy.",
    )
    session_dir_root: str = _setting(
        "/tmp/zray-sessions",
        "Where session directories (sockets, logs, tokens) are created. Not /tmp/zray: a "
        "script run from /tmp would import that directory as the zray package (a namespace "
        "package shadows an editable install).",
    )
    worker_start_timeout_s: float = _setting(
        30.0, "How long the node waits for a spawned worker to connect before giving up."
    )
    node_start_timeout_s: float = _setting(
        20.0, "How long init() waits for an embedded node daemon to become ready."
    )
    rpc_timeout_s: float = _setting(
        30.0, "Bound on control-plane request/reply exchanges (head and node RPCs)."
    )
    direct_calls: bool = _setting(
        True,
        "Push tasks and actor calls to workers on the same machine over a plain Unix socket "
        "read by the executing thread (zray/_private/wire/direct.py); 0 sends them over ZeroMQ.",
    )
    spin_wait_us: int = _setting(
        200,
        "Before a thread waiting for a direct call or its answer goes to sleep, it polls for "
        "this long, yielding the CPU between polls: a sleeping thread costs its waker a "
        "wake-up and itself a context switch (a fifth of a sync actor call on two cores). "
        "0 disables; a one-CPU machine never spins.",
    )
    enable_object_reconstruction: bool = _setting(
        True,
        "Recompute a task's output in shared memory whose every copy was lost (its node died) "
        "by running the task again, as Ray's object reconstruction does; 0 turns it off.",
    )
    enable_task_events: bool = _setting(
        True,
        "Record every task's state changes and send them to the head for the state API "
        "(`list_tasks`, `get_task`, `summarize_tasks`) and `zray.timeline()`; 0 turns them off "
        "in every process (a task or actor can also opt out with `enable_task_events=False`).",
    )
    task_events_report_interval_ms: int = _setting(
        1000,
        "How often each process sends the task events it recorded to the head (Ray's "
        "RAY_task_events_report_interval_ms); 0 turns task events off, as in Ray.",
    )
    task_events_flush_batch: int = _setting(
        10000, "A process sends its task events early once it holds this many."
    )
    task_events_max_buffer: int = _setting(
        100000,
        "The most task events a process sends in one batch; newer ones are dropped and counted "
        "(Ray's task_events_max_num_status_events_buffer_on_worker, which evicts the oldest).",
    )
    task_events_mark_failed_on_job_done_delay_ms: int = _setting(
        15000,
        "How long after a job's driver exits the head marks the job's tasks that never ended "
        "FAILED (Ray's gcs_mark_task_failed_on_job_done_delay_ms): the last events of its "
        "processes arrive first.",
    )
    task_events_max_num_task_in_gcs: int = _setting(
        100000,
        "The task attempts the head keeps events of (Ray's RAY_task_events_max_num_task_in_gcs); "
        "past it the oldest are evicted and counted as dropped.",
    )
    max_limit_from_data_source: int = _setting(
        10_000,
        "The most rows a state API data source (the head for actors, nodes, placement groups "
        "and task attempts; each node for its workers and objects) returns to a query, after "
        "its own filters (Ray's RAY_MAX_LIMIT_FROM_DATA_SOURCE); the rest are counted as "
        "truncated in Ray's `total` and `num_after_truncation`.",
    )
    kept_job_logs_max_bytes: int = _setting(
        2**30,
        "The most bytes of submitted jobs' driver logs kept, on each machine, from sessions "
        "that ended (`<session root>/job_logs/`); past it the least recently written are "
        "removed when a session's logs are added (common/kept_job_logs.py says why 1 GiB).",
    )
    max_lineage_bytes: int = _setting(
        1 * 2**30,
        "The task specs an owner keeps for reconstruction, at most (Ray's default); the oldest "
        "go first, and their outputs then cannot be recomputed.",
    )
    lease_idle_s: float = _setting(
        0.05,
        "How long a caller keeps an idle worker lease before returning it, so back-to-back "
        "synchronous tasks skip the lease round trip.",
    )
    task_pipeline_depth: int = _setting(
        8,
        "Tasks an owner keeps in flight on one leased worker on the same machine: short "
        "tasks (under 10 ms last time their function ran) queue on the worker behind the "
        "running one instead of each waiting for the previous answer; the worker hands its "
        "queue back if the running task blocks in get/wait. 1 turns pipelining off.",
    )
    max_pending_lease_requests: int = _setting(
        10, "Lease requests one caller keeps in flight per resource shape."
    )
    infeasible_warning_s: float = _setting(
        1.0, "How long a task waits on resources no node has before a warning says so."
    )
    log_to_driver: bool = _setting(True, "Forward worker stdout/stderr lines to the driver.")
    tqdm_patch_print: bool = _setting(
        True,
        "While zray.experimental.tqdm_ray draws progress bars in a driver, builtins.print "
        "clears them before printing (Ray's RAY_TQDM_PATCH_PRINT, also honoured).",
    )
    metrics_export_port: int = _setting(
        -1,
        "Port on which each node started here serves Prometheus metrics at /metrics (Ray's "
        "--metrics-export-port); 0 picks a free port, -1 serves none.",
    )
    metrics_report_interval_s: float = _setting(
        1.0,
        "How often a driver or worker sends its changed zray.util.metrics values and task "
        "counts to its node, and the node refreshes what it serves.",
    )
    spill_dir: str = _setting(
        "",
        "Where objects are spilled (default: <session>/spill). Each node writes into its "
        "own <session name>-<node id> subdirectory there, removed at shutdown, or by the next "
        "start after a crash.",
    )
    object_spilling_threshold: float = _setting(
        0.8,
        "Once this fraction of the object store is in use, the node spills in the "
        "background so later puts find room (Ray's setting of the same name); 1.0 spills only "
        "when a put does not fit.",
    )
    min_spilling_size: int = _setting(
        100 * 2**20,
        "Objects are spilled in batches of at least this many bytes, fused into "
        "one file, when that many can go (Ray's setting of the same name).",
    )
    oom_grace_period_s: float = _setting(
        2.0,
        "A put that finds the object store full of objects in use waits this long for readers "
        "to let go before it fails with ObjectStoreFullError (Ray's setting of the same name).",
    )
    include_dashboard: bool = _setting(
        True,
        "Whether init() starts the web dashboard beside a new local cluster when its "
        "include_dashboard is None (Ray's default: it does). `zray start --head` follows "
        "--include-dashboard only.",
    )
    head_port: int = _setting(6380, "Default TCP port of the head service for `zray start`.")
    node_death_timeout_s: float = _setting(
        10.0, "A node that sends no heartbeat (every second) for this long is declared dead."
    )
    head_reconnect_timeout_s: float = _setting(
        60.0,
        "How long nodes, drivers and workers wait for a head that went away (its process "
        "died, or its connection broke) to come back (`zray start --head` on its state, same "
        "port) before they give up: calls that need the head wait this long before failing, "
        "and a node stops. A restarted head waits as long for the nodes and drivers it knew "
        "to reconnect before it declares them dead (Ray's gcs_rpc_server_reconnect_timeout_s).",
    )
    head_persistence: bool = _setting(
        True,
        "The head writes its tables (jobs, KV, actors, named actors, placement groups, "
        "nodes) through to durable storage (zray/_private/head/store.py) before it answers.",
    )
    head_state_path: str = _setting(
        "",
        "The SQLite file (or a directory for it) the head keeps its tables in; default: "
        "head_state.sqlite3 in its session directory. `zray start --head-state-path`.",
    )
    redis_address: str = _setting(
        "",
        "HOST:PORT (or a redis:// URL) of a Redis server the head keeps its tables in "
        "instead of SQLite, as Ray's RAY_REDIS_ADDRESS (read too) selects an external Redis.",
    )
    redis_password: str = _setting(
        "",
        "Password of that Redis (`zray start --redis-password`; RAY_REDIS_PASSWORD is read too).",
    )
    redis_username: str = _setting("", "User name of that Redis (`--redis-username`).")
    address: str = _setting(
        "",
        "Cluster that init() without an address (or with 'auto') and the CLI connect to. "
        "RAY_ADDRESS is read too, so Ray habits carry over; ZRAY_ADDRESS wins if both are set.",
    )
    token: str = _setting(
        "",
        "Cluster token: every connection must prove it holds it. A head generates one "
        "unless given; joining nodes and remote drivers need it (local ones read the session). "
        "Ray's RAY_AUTH_TOKEN is read too.",
    )
    encrypt: bool = _setting(
        False,
        "Encrypt every connection with CURVE (keys derived from the token). Joining "
        "nodes and drivers switch to it on their own when the head uses it.",
    )
    join_timeout_s: float = _setting(
        10.0,
        "How long a joining node, a driver or the CLI waits for the head's security "
        "handshake before reporting it unreachable.",
    )
    worker_pool_max_extra: int = _setting(
        32, "Workers the node may start beyond num_cpus when running ones block in get()."
    )
    worker_startup_concurrency: int = _setting(
        0,
        "Workers a node starts at once beyond its first ones (Ray's "
        "maximum_startup_concurrency); 0: the number of CPUs, at least 2.",
    )
    client_reconnect_grace_period: float = _setting(
        30.0,
        "Seconds a ray:// session outlives a dropped connection, waiting for its client to "
        "reconnect, and a client keeps retrying before it fails its calls (Ray's "
        "RAY_CLIENT_RECONNECT_GRACE_PERIOD, read too).",
    )
    job_stop_signal: str = _setting(
        "SIGTERM",
        "The signal `zray job stop` sends a job's entrypoint and every process under it first: "
        "SIGTERM or SIGINT (Ray's RAY_JOB_STOP_SIGNAL, read too).",
    )
    job_stop_wait_time_s: float = _setting(
        3.0,
        "Seconds a stopped job's processes have to exit after the stop signal before they are "
        "killed with SIGKILL (Ray's RAY_JOB_STOP_WAIT_TIME_S, read too).",
    )
    job_start_timeout_seconds: float = _setting(
        900.0,
        "Seconds a submitted job may stay PENDING (its supervisor waiting for resources or its "
        "runtime env) before it is marked FAILED (Ray's RAY_JOB_START_TIMEOUT_SECONDS).",
    )
    job_allow_driver_on_worker_nodes: bool = _setting(
        False,
        "Let a submitted job's supervisor (and so its entrypoint) run on any node, as other "
        "actors do, rather than on the head node (Ray's RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES, "
        "read too; read by the dashboard's process).",
    )
    override_job_runtime_env: bool = _setting(
        False,
        "In a driver a submitted job started, let init(runtime_env=...) override the job's "
        "runtime_env where both set a field or env var, instead of failing (Ray's "
        "RAY_OVERRIDE_JOB_RUNTIME_ENV, read too).",
    )
    api_server_address: str = _setting(
        "",
        "The dashboard URL the Jobs SDK and `zray job` talk to before any address given "
        "(Ray's RAY_API_SERVER_ADDRESS, read too).",
    )
    job_headers: str = _setting(
        "",
        "JSON object of HTTP headers `zray job` sends when --headers is not given (Ray's "
        "RAY_JOB_HEADERS, read too).",
    )
    job_submit_hook: str = _setting(
        "",
        "Ray's RAY_JOB_SUBMIT_HOOK (read too): a function Ray calls on each submission. zray "
        "runs no hooks, so `zray job submit` refuses to run while it is set.",
    )
    rotation_max_bytes: int = _setting(
        512 * 1024 * 1024,
        "A log file past this size is rotated (Ray's RAY_ROTATION_MAX_BYTES, read too, and "
        "its default).",
    )
    rotation_backup_count: int = _setting(
        5,
        "Rotated copies kept of each log file; 0 never rotates (Ray's "
        "RAY_ROTATION_BACKUP_COUNT, read too, and its default).",
    )
    inline_nested_tasks: bool = _setting(
        True,
        "A worker blocked in get() on tasks it submitted runs those not yet leased to "
        "another worker itself, on the blocked thread (when they fit in its lease), so a deep "
        "recursion needs a few processes, not one per blocked parent. 0 gives every task its "
        "own worker lease.",
    )

    @classmethod
    def from_env(cls, environ=None) -> "Config":
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _parse(f.type, raw, f.name)
        for name, ray_name in RAY_ALIASES.items():
            if name not in values and environ.get(ray_name):
                kind = next(f.type for f in dataclasses.fields(cls) if f.name == name)
                try:
                    values[name] = _parse(kind, environ[ray_name], name)
                except ValueError:
                    # As Ray's env_integer/env_bool: a malformed value of its variable falls
                    # back to the default (said here, where Ray only logs at debug level).
                    logging.getLogger(__name__).warning(
                        "%s=%r is not a %s; using the default", ray_name, environ[ray_name], kind
                    )
        return cls(**values)

    def describe(self) -> dict:
        return {
            f.name: (getattr(self, f.name), f.metadata["description"])
            for f in dataclasses.fields(self)
        }


def _parse(type_name, raw: str, name: str):
    kind = type_name if isinstance(type_name, str) else type_name.__name__
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"environment variable {ENV_PREFIX}{name.upper()}={raw!r} is not a {kind}")


config = Config.from_env()


def environment_for_children(extra: dict | None = None) -> dict:
    """The environment to give a spawned zray process: ours, plus explicit overrides. Workers
    get OMP_NUM_THREADS=1 unless the user chose a value, as Ray does: each task has one CPU."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env
