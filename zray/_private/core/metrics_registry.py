"""This process's metric values (`zray.util.metrics`) and task counts, sent to its node.

User code records into a process-wide registry (one lock, a dict update per record). A reporter
thread sends what changed to the node every `metrics_report_interval_s` as one `MetricsReport`,
each series as its current total: the node keeps the latest report of each process, so a lost
or repeated report changes nothing. The node serves them on its Prometheus port
(zray/_private/node/metrics_export.py).
"""

from __future__ import annotations

import bisect
import collections
import logging
import threading

from zray._config import config
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"


class _Family:
    __slots__ = ("kind", "name", "description", "tag_keys", "boundaries", "series", "changed")

    def __init__(self, kind: str, name: str, description: str, tag_keys: tuple, boundaries):
        self.kind = kind
        self.name = name
        self.description = description
        self.tag_keys = tag_keys
        self.boundaries = list(boundaries or ())
        self.series: dict = {}  # tag values -> float, or [bucket counts, sum, count]
        self.changed: set = set()


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.families: dict[str, _Family] = {}

    def define(self, kind: str, name: str, description: str, tag_keys: tuple, boundaries=None):
        with self.lock:
            family = self.families.get(name)
            if family is None:
                self.families[name] = _Family(kind, name, description, tag_keys, boundaries)
            elif family.kind != kind or family.tag_keys != tag_keys:
                # Prometheus cannot serve one name as two kinds or label sets.
                raise ValueError(
                    f"Metric {name!r} is already defined in this process as a {family.kind} "
                    f"with tag_keys {family.tag_keys}; a metric name has one kind and one set "
                    f"of tag keys."
                )

    def record(self, name: str, tags: dict, value: float):
        with self.lock:
            family = self.families[name]
            key = tuple(tags[k] for k in family.tag_keys)
            series = family.series
            if family.kind == COUNTER:
                series[key] = series.get(key, 0.0) + value
            elif family.kind == GAUGE:
                series[key] = float(value)
            else:
                point = series.get(key)
                if point is None:
                    point = series[key] = [[0] * (len(family.boundaries) + 1), 0.0, 0]
                point[0][bisect.bisect_left(family.boundaries, value)] += 1
                point[1] += value
                point[2] += 1
            family.changed.add(key)

    def take_changes(self) -> list:
        """Rows of the series changed since the last call, in MetricsReport's layout."""
        rows = []
        with self.lock:
            for family in self.families.values():
                if not family.changed:
                    continue
                series = []
                for key in family.changed:
                    value = family.series[key]
                    if family.kind == HISTOGRAM:
                        value = [list(value[0]), value[1], value[2]]
                    series.append([list(key), value])
                family.changed = set()
                rows.append(
                    [
                        family.kind,
                        family.name,
                        family.description,
                        list(family.tag_keys),
                        family.boundaries,
                        series,
                    ]
                )
        return rows


registry = Registry()


class TaskCounts:
    """Task counts by Ray's `ray_tasks` states. The owner's pending and submitted tasks are read
    from its submitter when a report is due; finished, failed and running ones are counted here
    as they happen, on every task's path: plain dict updates under an uncontended lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.done: dict = {}  # (name, state, is_retry) -> count
        self.running: dict = {}  # name -> calls running

    def finished(self, name: str, failed: bool, is_retry: bool):
        key = (name, "FAILED" if failed else "FINISHED", "1" if is_retry else "0")
        with self.lock:
            done = self.done
            done[key] = done.get(key, 0) + 1

    def started(self, name: str):
        with self.lock:
            running = self.running
            running[name] = running.get(name, 0) + 1

    def stopped(self, name: str):
        with self.lock:
            running = self.running
            left = running.get(name, 0) - 1
            if left > 0:
                running[name] = left
            else:
                running.pop(name, None)

    def rows(self, submitter) -> list:
        rows = []
        pending: collections.Counter = collections.Counter()
        if submitter is not None:
            with submitter.lock:
                for spec in submitter.tasks.values():
                    state = _OWNER_STATES.get(spec.state)
                    if state is not None:
                        pending[(spec.name, state, "1" if spec.attempt else "0")] += 1
        rows += [[n, s, "owner", r, c] for (n, s, r), c in pending.items()]
        with self.lock:
            rows += [[n, s, "owner", r, c] for (n, s, r), c in self.done.items()]
            rows += [[n, "RUNNING", "executor", "0", c] for n, c in self.running.items()]
        return rows


# The submitter's task states as Ray names them (an owner's view; RUNNING is the executor's).
_OWNER_STATES = {
    "resolving": "PENDING_ARGS_AVAIL",
    "queued": "PENDING_NODE_ASSIGNMENT",
    "running": "SUBMITTED_TO_WORKER",
}

tasks = TaskCounts()


class Reporter:
    """The thread that sends this process's changes to its node."""

    def __init__(self, core):
        self.core = core
        self.stop_event = threading.Event()
        self._last_tasks: list = []
        self.thread = threading.Thread(target=self._run, name="zray-metrics", daemon=True)

    def start(self):
        self.thread.start()

    def close(self):
        """Stops the thread and sends what changed since its last report."""
        self.stop_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=2)
        try:
            self.report()
        except Exception:
            logger.debug("last metrics report failed", exc_info=True)

    def _run(self):
        interval = config.metrics_report_interval_s
        while not self.stop_event.wait(interval):
            try:
                self.report()
            except Exception:  # a report is worth less than the process: try again later
                logger.debug("metrics report failed", exc_info=True)

    def report(self):
        core = self.core
        task_rows = sorted(tasks.rows(getattr(core, "submitter", None)))
        changed_tasks = task_rows != self._last_tasks
        metric_rows = registry.take_changes()
        if not metric_rows and not changed_tasks:
            return
        self._last_tasks = task_rows
        core.endpoint.send(
            core.node_address,
            P.MetricsReport(core.worker_id, metric_rows, task_rows),
        )
