"""The node's Prometheus endpoint (`--metrics-export-port`), with Ray's metric names and labels
so Ray's Grafana dashboards read it.

The node's loop never waits for a scrape: once per `metrics_report_interval_s` it copies the few
numbers it owns (resources, arena use, task counts, on the head node actors and placement
groups) into an immutable snapshot and swaps a reference; prometheus-client's HTTP server thread
turns the latest snapshot into text when scraped, reading the machine's CPU and memory itself.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import psutil
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from zray._config import config
from zray._private.common import bundles as B
from zray._private.common import resources as R
from zray._private.common import session
from zray._private.head.state_queries import ACTOR_STATES
from zray._private.node.metrics_table import BadReport, MetricsPortError, MetricsTable

logger = logging.getLogger(__name__)

USER_PREFIX = "ray_"  # Ray serves user metrics under its namespace: Counter("x") is ray_x_total


class Snapshot(NamedTuple):
    resources: list  # (name, state, amount)
    store_used: int
    store_capacity: int
    local_objects: int
    store_spilled: int  # bytes of the objects with a copy in a spill file
    spill: dict
    tasks: dict  # (Name, State, Source, IsRetry) -> count
    actors: dict  # (State, Name) -> count; head node only
    placement_groups: dict  # State -> count; head node only
    user: list  # MetricsTable.families()


class MetricsExporter:
    def __init__(self, daemon, port: int):
        self.daemon = daemon
        self.table = MetricsTable()
        self.snapshot: Snapshot | None = None
        self.labels = {
            "SessionName": session.session_name(daemon.session_dir),
            "NodeAddress": daemon.opts.node_ip,
        }
        self.node_labels = {
            "ip": daemon.opts.node_ip,
            "RayNodeType": "head" if daemon.opts.head else "worker",
            "IsHeadNode": "true" if daemon.opts.head else "false",
            "SessionName": self.labels["SessionName"],
        }
        self._next_publish = 0.0  # the loop's first turn publishes; until then only the
        self._bad_reports = 0  # machine's figures are served
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        self.server, self.thread = start_http_server(
            port, addr=daemon.opts.node_ip, registry=registry
        )
        self.port = self.server.server_port
        logger.info("serving Prometheus metrics on %s:%d", daemon.opts.node_ip, self.port)

    # -------------------------------------------------------------- in the node's loop

    def tick(self, now: float):
        if now >= self._next_publish:
            self.publish(now)

    def publish(self, now: float):
        self._next_publish = now + config.metrics_report_interval_s
        daemon = self.daemon
        scheduler = daemon.scheduler
        total, available = R.to_floats(scheduler.total), R.to_floats(scheduler.available)
        resources = []
        for name, amount in total.items():
            if B.is_group_resource(name):
                continue
            free = available.get(name, 0.0)
            resources.append((name, "AVAILABLE", free))
            resources.append((name, "USED", amount - free))
        actors: dict = {}
        groups: dict = {}
        head = daemon.head
        if head is not None:
            for actor in head.actors.actors.values():
                key = (ACTOR_STATES.get(actor.state, actor.state), actor.spec.get("class_name", ""))
                actors[key] = actors.get(key, 0) + 1
            for group in head.placement.groups.values():
                groups[group.state] = groups.get(group.state, 0) + 1
        self.snapshot = Snapshot(
            resources,
            daemon.store.allocator.used,
            daemon.store.allocator.capacity,
            len(daemon.store.objects),
            sum(o.size for o in daemon.store.objects.values() if o.spill_file),
            dict(daemon.spiller.counters),
            self.table.task_counts(),
            actors,
            groups,
            self.table.families(),
        )

    def on_report(self, process: bytes, metrics: list, tasks: list):
        try:
            self.table.report(process, metrics, tasks)
        except BadReport as exc:
            self._bad_reports += 1
            if self._bad_reports <= 10:  # a broken client must not flood the node's log
                logger.warning("dropped parts of a metrics report: %s", exc)

    def process_exited(self, process: bytes):
        self.table.process_exited(process)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2)


def start(daemon, port: int) -> MetricsExporter:
    try:
        return MetricsExporter(daemon, port)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {daemon.opts.node_ip}:{port} "
            f"(--metrics-export-port): {exc.strerror or exc}"
        ) from None


class _Collector:
    """prometheus-client's view of the latest snapshot; runs in the HTTP server's thread."""

    def __init__(self, exporter: MetricsExporter):
        self.exporter = exporter

    def collect(self):
        exporter = self.exporter
        snap = exporter.snapshot
        base = exporter.labels
        yield from _machine(exporter.node_labels)
        if snap is None:
            return

        def gauge(name, doc, extra_keys=()):
            return GaugeMetricFamily(name, doc, labels=[*base, *extra_keys])

        values = list(base.values())
        family = gauge("ray_resources", "Logical resources of the node", ("Name", "State"))
        for name, state, amount in snap.resources:
            family.add_metric([*values, name, state], amount)
        yield family
        family = gauge("ray_object_store_memory", "Object store memory by location", ("Location",))
        family.add_metric([*values, "MMAP_SHM"], snap.store_used)
        family.add_metric([*values, "SPILLED"], snap.store_spilled)  # as Ray: on disk now
        yield family
        for name, doc, amount in (
            ("ray_object_store_used_memory", "Object store memory in use", snap.store_used),
            (
                "ray_object_store_available_memory",
                "Object store memory available",
                snap.store_capacity - snap.store_used,
            ),
            (
                "ray_object_store_num_local_objects",
                "Objects in this node's store",
                snap.local_objects,
            ),
        ):
            family = gauge(name, doc)
            family.add_metric(values, amount)
            yield family
        family = CounterMetricFamily(
            "ray_spill_manager_request_total",
            "Objects spilled and restored by this node",
            labels=[*base, "Type"],
        )
        family.add_metric([*values, "Spilled"], snap.spill.get("objects_spilled", 0))
        family.add_metric([*values, "Restored"], snap.spill.get("objects_restored", 0))
        yield family
        family = gauge("ray_tasks", "Tasks by state", ("Name", "State", "Source", "IsRetry"))
        for key, count in snap.tasks.items():
            family.add_metric([*values, *key], count)
        yield family
        if snap.actors or exporter.daemon.head is not None:
            family = gauge("ray_actors", "Actors by state", ("State", "Name", "Source"))
            for (state, name), count in snap.actors.items():
                family.add_metric([*values, state, name, "gcs"], count)
            yield family
            family = gauge("ray_placement_groups", "Placement groups by state", ("State",))
            for state, count in snap.placement_groups.items():
                family.add_metric([*values, state], count)
            yield family
        yield from _user_families(snap.user, base)


def _machine(labels: dict):
    keys, values = list(labels), list(labels.values())
    memory = psutil.virtual_memory()
    used = memory.total - memory.available  # Ray's figure of used memory
    for name, doc, amount in (
        ("ray_node_cpu_utilization", "Total CPU usage on a ray node", psutil.cpu_percent(None)),
        ("ray_node_cpu_count", "Total CPUs available on a ray node", os.cpu_count() or 0),
        ("ray_node_mem_used", "Memory usage on a ray node", used),
        ("ray_node_mem_available", "Memory available on a ray node", memory.available),
        ("ray_node_mem_total", "Total memory on a ray node", memory.total),
        ("ray_node_mem_used_host", "Host memory usage on a ray node", used),
        ("ray_node_mem_total_host", "Total host memory on a ray node", memory.total),
        ("ray_node_mem_shared_bytes", "Total shared memory usage on a ray node", memory.shared),
    ):
        family = GaugeMetricFamily(name, doc, labels=keys)
        family.add_metric(values, amount)
        yield family


def _user_families(families: list, base: dict):
    for kind, name, description, tag_keys, boundaries, series in families:
        # A user tag of the same name as ours wins: it is what the program asked to see.
        ours = {k: v for k, v in base.items() if k not in tag_keys}
        keys = [*ours, *tag_keys]
        full = USER_PREFIX + name
        if kind == "counter":
            family = CounterMetricFamily(full, description, labels=keys)
            for tags, value in series.items():
                family.add_metric([*ours.values(), *tags], value)
        elif kind == "gauge":
            family = GaugeMetricFamily(full, description, labels=keys)
            for tags, value in series.items():
                family.add_metric([*ours.values(), *tags], value)
        else:
            family = HistogramMetricFamily(full, description, labels=keys)
            for tags, (buckets, total, count) in series.items():
                cumulative, running = [], 0
                for bound, n in zip([*map(_bound, boundaries), "+Inf"], buckets):
                    running += n
                    cumulative.append((bound, running))
                family.add_metric([*ours.values(), *tags], cumulative, total)
        yield family


def _bound(value: float) -> str:
    return repr(float(value))
