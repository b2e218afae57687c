"""What a node daemon is started with (`zray start` flags, `init()`'s arguments), and the
resources it offers by default."""

from __future__ import annotations

import os
from dataclasses import dataclass

from zray._config import config
from zray._private.node import scheduler as S


@dataclass
class NodeOptions:
    session_dir: str
    head: bool = False
    head_address: str = ""
    head_port: int = 0
    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict | None = None
    object_store_memory: int | None = None
    node_ip: str = "127.0.0.1"
    token: str = ""
    encrypt: bool = False
    embedded_by: int = 0  # pid of the driver that started us; we stop when it dies
    # The web dashboard, head node only (zray.dashboard; dashboard_process.py starts it).
    include_dashboard: bool | None = False  # None: Ray's default, on unless its port is taken
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None  # None: 8265 or the next free one
    token_generated: bool = False  # nobody gave one: a head resuming takes its state's
    node_death_timeout_s: float = config.node_death_timeout_s
    metrics_export_port: int = config.metrics_export_port  # -1: none


@dataclass
class Client:
    kind: str
    pid: int
    job_id: bytes


def default_resources(opts: NodeOptions) -> tuple[dict, int]:
    total_ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # psutil's figure
    store = opts.object_store_memory or int(total_ram * config.object_store_fraction)
    cpus = opts.num_cpus if opts.num_cpus is not None else os.cpu_count()
    resources = {
        "CPU": float(cpus),
        "memory": float(int(total_ram * 0.7)),
        "object_store_memory": float(store),
        f"node:{opts.node_ip}": 1.0,
    }
    if opts.num_gpus:
        resources["GPU"] = float(opts.num_gpus)
    if opts.head:
        resources["node:__internal_head__"] = 1.0
    resources.update(opts.resources or {})
    return resources, store


def worker_limit_message(limit: S.WorkerLimitReached, cpus: int) -> str:
    return (
        f"This node reached its limit of {limit.limit} worker processes (num_cpus {cpus} + "
        f"worker_pool_max_extra {limit.limit - max(cpus, 1)}) while tasks that fit its free "
        f"resources wait for a worker; {limit.blocked} of the workers are blocked in "
        f"ray.get()/ray.wait(). Those tasks wait until a worker is free, and stall for good if "
        f"every worker waits on them. Raise the limit with the environment variable "
        f"ZRAY_WORKER_POOL_MAX_EXTRA=<n> (where the node starts: the driver's init() or "
        f"`zray start`). This warning is shown once per node."
    )
