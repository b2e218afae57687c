"""zray.util against Ray 2.60's ray.util signatures, recorded in tests/data/ray_util_surface.json
by perf/extract_ray_util_surface.py (Ray itself is never imported here)."""

import importlib
import inspect
import json
from pathlib import Path

import pytest

SURFACE = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "ray_util_surface.json").read_text()
)
# Constructed by the pool, never by users: their __init__ is an implementation detail.
INTERNAL_INIT = {"AsyncResult", "OrderedIMapIterator", "UnorderedIMapIterator"}


def _cases():
    for module_name, module in SURFACE["modules"].items():
        for name, record in module["names"].items():
            if record["kind"] == "function":
                yield module_name, name, None, record["signature"]
                continue
            for method, signature in record["methods"].items():
                if not (method == "__init__" and name in INTERNAL_INIT):
                    yield module_name, name, method, signature


@pytest.mark.parametrize(
    "module_name,name,method,expected",
    list(_cases()),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_signature_matches_ray(module_name, name, method, expected):
    module = importlib.import_module(
        module_name.replace("ray.", "zray.", 1) if module_name.startswith("ray.") else module_name
    )
    target = getattr(module, name)
    if method is not None:
        target = getattr(target, method)
    ours = list(inspect.signature(target).parameters.values())
    assert [p.name for p in ours] == [p["name"] for p in expected]
    for mine, theirs in zip(ours, expected):
        assert mine.kind.name == theirs["kind"], mine.name
        default = None if mine.default is inspect.Parameter.empty else repr(mine.default)
        assert default == theirs.get("default"), mine.name


def test_exported_names():
    import zray.util
    import zray.util.multiprocessing

    ray_util = set(SURFACE["modules"]["ray.util"]["all"])
    ours = {
        "ActorPool",
        "as_completed",
        "get_current_placement_group",
        "get_node_ip_address",
        "get_placement_group",
        "list_named_actors",
        "map_unordered",
        "placement_group",
        "placement_group_table",
        "remove_placement_group",
    }
    assert ours <= ray_util and ours <= set(zray.util.__all__)
    assert set(zray.util.multiprocessing.__all__) == set(
        SURFACE["modules"]["ray.util.multiprocessing"]["all"]
    )
    assert callable(zray.util.placement_group)  # a function, as in Ray, not the submodule


def test_queue_errors_are_the_standard_library_ones():
    import queue

    from zray.util.queue import Empty, Full

    assert issubclass(Empty, queue.Empty) and issubclass(Full, queue.Full)


def test_node_ip_without_a_cluster_is_an_address_of_this_machine():
    import ipaddress

    from zray.util import get_node_ip_address

    assert ipaddress.ip_address(get_node_ip_address()).version == 4
    assert get_node_ip_address("not-an-address") == "127.0.0.1"
