"""Application metrics, as Ray's `ray.util.metrics`: `Counter`, `Gauge` and `Histogram`.

Record them in a driver, task or actor; every node serves its processes' values on its
Prometheus port (`zray start --metrics-export-port=PORT`, or `init(_metrics_export_port=PORT)`)
under Ray's names: `Counter("requests")` is `ray_requests_total`, a `Gauge` or `Histogram` named
`x` is `ray_x` (`ray_x_bucket`, `_sum`, `_count`), labelled with its tags and the node's
`SessionName` and `NodeAddress`. Processes send changes to their node about once a second.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Dict, List, Optional, Tuple, Union

from zray._private.core.metrics_registry import COUNTER, GAUGE, HISTOGRAM, registry

# Ray's copy of prometheus-client's rule for metric names.
_VALID_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _is_invalid_metric_name(name: str) -> bool:
    if len(name) == 0:
        raise ValueError("Empty name is not allowed. Please provide a metric name.")
    if not _VALID_METRIC_NAME_RE.match(name):
        warnings.warn(
            f"Invalid metric name: {name}. Metric will be discarded "
            "and data will not be collected or published. "
            "Metric names can only contain letters, numbers, _, and :. "
            "Metric names cannot start with numbers.",
            UserWarning,
            stacklevel=2,
        )
        return True
    return False


class Metric:
    """The parent class of custom metrics; `Counter`, `Gauge` and `Histogram` share its
    methods."""

    _kind = ""

    def __init__(
        self,
        name: str,
        description: str = "",
        tag_keys: Optional[Tuple[str, ...]] = None,
    ):
        self._discard_metric = _is_invalid_metric_name(name)
        self._name = name
        self._description = description
        self._default_tags: Dict[str, str] = {}
        self._tag_keys = tag_keys or tuple()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        if ":" in self._name:
            warnings.warn(
                f"Metric name {self._name} contains a : character, which is no longer allowed. "
                f"Please migrate to the new metric name format. "
                f"This will be an error in the future.",
                FutureWarning,
                stacklevel=2,
            )

    def _define(self, boundaries=None):
        if not self._discard_metric:
            registry.define(self._kind, self._name, self._description, self._tag_keys, boundaries)

    def set_default_tags(self, default_tags: Dict[str, str]):
        """Sets tags used by every record call (tags passed to a call take precedence).

        Returns:
            Metric: the instance itself, so it can be chained after the constructor.
        """
        for key, val in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(val, str):
                raise TypeError(f"Tag values must be str, got {type(val)}.")
        self._default_tags = default_tags
        return self

    def __reduce__(self):
        return type(self), (self._name, self._description, self._tag_keys)

    def _record_number(self, value, tags) -> None:
        if not isinstance(value, (int, float)):
            raise TypeError(f"value must be int or float, got {type(value)}.")
        self._record(value, tags)

    def _record(self, value: Union[int, float], tags: Optional[Dict[str, str]] = None) -> None:
        if self._discard_metric:
            return
        final_tags = self._get_final_tags(tags)
        self._validate_tags(final_tags)
        registry.record(self._name, final_tags, value)

    def _get_final_tags(self, tags):
        if not tags:
            return self._default_tags
        for val in tags.values():
            if not isinstance(val, str):
                raise TypeError(f"Tag values must be str, got {type(val)}.")
        return {**self._default_tags, **tags}

    def _validate_tags(self, final_tags):
        missing_tags = [key for key in self._tag_keys if key not in final_tags]
        if missing_tags:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing_tags)}.")

    @property
    def info(self) -> Dict[str, Any]:
        """The metric's name, description, tag keys and default tags."""
        return {
            "name": self._name,
            "description": self._description,
            "tag_keys": self._tag_keys,
            "default_tags": self._default_tags,
        }


class Counter(Metric):
    """A cumulative metric that only goes up; served as Prometheus counter `ray_<name>_total`.

    Args:
        name: Name of the metric.
        description: Description of the metric.
        tag_keys: Tag keys of the metric.
    """

    _kind = COUNTER

    def __init__(
        self,
        name: str,
        description: str = "",
        tag_keys: Optional[Tuple[str, ...]] = None,
    ):
        super().__init__(name, description, tag_keys)
        self._define()

    def inc(self, value: Union[int, float] = 1.0, tags: Dict[str, str] = None):
        """Increments the counter by `value` (default 1), which must be positive."""
        if isinstance(value, (int, float)) and value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        self._record_number(value, tags)


class Histogram(Metric):
    """Counts observed values in buckets bounded by `boundaries`, with their sum and count.

    Args:
        name: Name of the metric.
        description: Description of the metric.
        boundaries: Upper bounds of the histogram's buckets (positive).
        tag_keys: Tag keys of the metric.
    """

    _kind = HISTOGRAM

    def __init__(
        self,
        name: str,
        description: str = "",
        boundaries: List[float] = None,
        tag_keys: Optional[Tuple[str, ...]] = None,
    ):
        super().__init__(name, description, tag_keys)
        if boundaries is None or len(boundaries) == 0:
            raise ValueError(
                "boundaries argument should be provided when using "
                "the Histogram class. e.g., "
                'Histogram("name", boundaries=[1.0, 2.0])'
            )
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(
                    "Invalid `boundaries` argument at index "
                    f"{i}, {boundaries}. Use positive values for the arguments."
                )
        self.boundaries = boundaries
        self._define(sorted(float(b) for b in boundaries))

    def observe(self, value: Union[int, float], tags: Dict[str, str] = None):
        """Adds `value` to the bucket it falls in."""
        self._record_number(value, tags)

    def __reduce__(self):
        return Histogram, (self._name, self._description, self.boundaries, self._tag_keys)

    @property
    def info(self):
        info = super().info
        info.update({"boundaries": self.boundaries})
        return info


class Gauge(Metric):
    """The last value set; it may go up or down. Served as Prometheus gauge `ray_<name>`.

    Args:
        name: Name of the metric.
        description: Description of the metric.
        tag_keys: Tag keys of the metric.
    """

    _kind = GAUGE

    def __init__(
        self,
        name: str,
        description: str = "",
        tag_keys: Optional[Tuple[str, ...]] = None,
    ):
        super().__init__(name, description, tag_keys)
        self._define()

    def set(self, value: Optional[Union[int, float]], tags: Dict[str, str] = None):
        """Sets the gauge to `value`; `None` does nothing."""
        if value is not None:
            self._record_number(value, tags)


__all__ = [
    "Counter",
    "Histogram",
    "Gauge",
]
