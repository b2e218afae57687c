"""The node's view of its processes' metrics: the latest `MetricsReport` of each driver and
worker, summed into what the node serves.

Each report carries totals, so a process's series simply replace its earlier ones. When a
process exits, its counters and histograms fold into the node's retired totals (a counter never
goes down because a worker ended) and its gauges are dropped, as Ray drops a dead worker's.
Runs in the node's loop; `families()` is called once per publish, not per scrape.
"""

from __future__ import annotations

import logging
import math

logger = logging.getLogger(__name__)

KINDS = ("counter", "gauge", "histogram")
MAX_SERIES_PER_PROCESS = 10_000  # a runaway tag value must not grow the node without bound


class BadReport(ValueError):
    pass


class MetricsPortError(OSError):
    """The node cannot serve metrics on the port it was given."""


class _Definition:
    __slots__ = ("kind", "description", "tag_keys", "boundaries")

    def __init__(self, kind: str, description: str, tag_keys: tuple, boundaries: list):
        self.kind = kind
        self.description = description
        self.tag_keys = tag_keys
        self.boundaries = boundaries


class MetricsTable:
    def __init__(self):
        self.definitions: dict[str, _Definition] = {}
        # process -> name -> tag values -> value (float, or [bucket counts, sum, count])
        self.values: dict[bytes, dict[str, dict[tuple, object]]] = {}
        self.retired: dict[str, dict[tuple, object]] = {}
        self.tasks: dict[bytes, list] = {}  # process -> its latest task rows
        self.retired_tasks: dict[tuple, int] = {}  # FINISHED/FAILED of exited processes

    def report(self, process: bytes, metrics: list, tasks: list):
        """Takes one process's report; raises BadReport (keeping what was valid) on rows that
        do not follow docs/protocol.md."""
        problems = []
        mine = self.values.setdefault(process, {})
        for row in metrics:
            try:
                self._take_row(mine, row)
            except (BadReport, TypeError, ValueError, IndexError) as exc:
                problems.append(str(exc))
        try:
            self.tasks[process] = [_task_row(row) for row in tasks]
        except (TypeError, ValueError, IndexError) as exc:
            problems.append(f"task rows: {exc}")
        if problems:
            raise BadReport("; ".join(problems[:3]))

    def _take_row(self, mine: dict, row: list):
        kind, name, description, tag_keys, boundaries, series = row
        if kind not in KINDS or not isinstance(name, str) or not isinstance(series, list):
            raise BadReport(f"bad metric row for {name!r}")
        tag_keys = tuple(str(k) for k in tag_keys)
        boundaries = [float(b) for b in boundaries or ()]
        known = self.definitions.get(name)
        if known is None:
            known = self.definitions[name] = _Definition(
                kind, str(description), tag_keys, boundaries
            )
        elif (known.kind, known.tag_keys, known.boundaries) != (kind, tag_keys, boundaries):
            raise BadReport(f"metric {name!r} reported with another kind, tag keys or boundaries")
        values = mine.setdefault(name, {})
        for tags, value in series:
            key = tuple(str(t) for t in tags)
            if len(key) != len(tag_keys):
                raise BadReport(f"metric {name!r}: {len(key)} tag values for {len(tag_keys)} keys")
            if key not in values and len(values) >= MAX_SERIES_PER_PROCESS:
                raise BadReport(f"metric {name!r}: over {MAX_SERIES_PER_PROCESS} series")
            values[key] = _value(kind, value, len(boundaries))

    def process_exited(self, process: bytes):
        for name, values in self.values.pop(process, {}).items():
            definition = self.definitions[name]
            if definition.kind == "gauge":
                continue
            retired = self.retired.setdefault(name, {})
            for key, value in values.items():
                retired[key] = _add(definition.kind, retired.get(key), value)
        for name, state, source, is_retry, count in self.tasks.pop(process, ()):
            if state in ("FINISHED", "FAILED"):
                key = (name, state, source, is_retry)
                self.retired_tasks[key] = self.retired_tasks.get(key, 0) + count

    def families(self) -> list:
        """[(kind, name, description, tag_keys, boundaries, {tag values: value})] summed over
        this node's processes, live and exited."""
        out = []
        for name, definition in self.definitions.items():
            total: dict[tuple, object] = {}
            if definition.kind != "gauge":
                for key, value in self.retired.get(name, {}).items():
                    total[key] = _add(definition.kind, None, value)
            for values in self.values.values():
                for key, value in values.get(name, {}).items():
                    if definition.kind == "gauge":
                        total[key] = value  # the latest report wins
                    else:
                        total[key] = _add(definition.kind, total.get(key), value)
            out.append(
                (
                    definition.kind,
                    name,
                    definition.description,
                    definition.tag_keys,
                    definition.boundaries,
                    total,
                )
            )
        return out

    def task_counts(self) -> dict:
        """(Name, State, Source, IsRetry) -> count over this node's processes."""
        counts = dict(self.retired_tasks)
        for rows in self.tasks.values():
            for name, state, source, is_retry, count in rows:
                key = (name, state, source, is_retry)
                counts[key] = counts.get(key, 0) + count
        return counts


def _task_row(row) -> tuple:
    name, state, source, is_retry, count = row
    if not all(isinstance(v, str) for v in (name, state, source, is_retry)):
        raise ValueError("task row fields must be strings")
    return (name, state, source, is_retry, int(count))


def _value(kind: str, value, nbounds: int):
    if kind != "histogram":
        value = float(value)
        if math.isnan(value) and kind == "counter":
            raise BadReport("a counter cannot be NaN")
        return value
    buckets, total, count = value
    buckets = [int(b) for b in buckets]
    if len(buckets) != nbounds + 1:
        raise BadReport(f"histogram with {len(buckets)} buckets for {nbounds} boundaries")
    return [buckets, float(total), int(count)]


def _add(kind: str, into, value):
    if kind == "counter":
        return (into or 0.0) + value
    if into is None:
        return [list(value[0]), value[1], value[2]]
    return [[a + b for a, b in zip(into[0], value[0])], into[1] + value[1], into[2] + value[2]]
