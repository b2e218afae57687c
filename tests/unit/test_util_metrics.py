"""zray.util.metrics validates as Ray's ray.util.metrics does, and records into the process's
registry (what the reporter sends to the node)."""

import pytest

from zray._private.core.metrics_registry import registry
from zray.util.metrics import Counter, Gauge, Histogram


def changes() -> dict:
    return {row[1]: row for row in registry.take_changes()}


def test_rays_validation_errors():
    with pytest.raises(ValueError, match="Empty name is not allowed"):
        Counter("")
    with pytest.raises(TypeError, match="tag_keys should be a tuple type"):
        Counter("u_list_keys", tag_keys=["a"])
    with pytest.raises(TypeError, match="Tag keys must be str"):
        Gauge("u_int_key", tag_keys=(1,))
    with pytest.raises(ValueError, match="boundaries argument should be provided"):
        Histogram("u_no_bounds")
    with pytest.raises(ValueError, match="Use positive values"):
        Histogram("u_neg_bounds", boundaries=[-1.0])
    counter = Counter("u_checked", tag_keys=("a",))
    with pytest.raises(ValueError, match="value must be >0"):
        counter.inc(0, tags={"a": "x"})
    with pytest.raises(TypeError, match="value must be int or float"):
        counter.inc("1", tags={"a": "x"})
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): a"):
        counter.inc()
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.inc(tags={"a": 1})
    with pytest.raises(ValueError, match="Unrecognized tag key b"):
        counter.set_default_tags({"b": "x"})
    with pytest.warns(UserWarning, match="Invalid metric name: 1bad"):
        Counter("1bad").inc()  # discarded, as in Ray
    assert "1bad" not in changes()


def test_one_name_one_kind():
    Counter("u_kinds")
    with pytest.raises(ValueError, match="already defined in this process as a counter"):
        Gauge("u_kinds")


def test_records_reach_the_registry_with_their_tags():
    changes()
    counter = Counter("u_hits", "hits", tag_keys=("route",)).set_default_tags({"route": "/"})
    counter.inc()
    counter.inc(2.5, tags={"route": "/x"})
    Gauge("u_level").set(None)  # a no-op, as in Ray
    Gauge("u_level").set(4)
    Histogram("u_sizes", boundaries=[10, 1]).observe(5)
    rows = changes()
    assert sorted(map(tuple, [(tuple(k), v) for k, v in rows["u_hits"][5]])) == [
        (("/",), 1.0),
        (("/x",), 2.5),
    ]
    assert rows["u_level"][5] == [[[], 4.0]]
    assert rows["u_sizes"][4] == [1.0, 10.0] and rows["u_sizes"][5] == [[[], [[0, 1, 0], 5.0, 1]]]
    assert Counter("u_hits", tag_keys=("route",)).info["name"] == "u_hits"
    assert changes() == {}  # nothing changed since
