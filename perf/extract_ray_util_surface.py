"""Record the signatures of Ray's ``ray.util`` toolbox in tests/data/ray_util_surface.json.

Run with the *Ray* virtualenv's interpreter (Ray is not a zray dependency); no cluster starts:

    $RAYPY perf/extract_ray_util_surface.py [--out tests/data/ray_util_surface.json]

tests/integration/test_util_surface.py compares zray.util against the file, parameter by
parameter (names, kinds and defaults), so a drift from Ray's API fails a test.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
from pathlib import Path

import ray

# module -> names whose signature matters (classes: their public methods too)
TARGETS = {
    "ray.util": [
        "get_node_ip_address",
        "list_named_actors",
        "as_completed",
        "map_unordered",
        "ActorPool",
        "register_serializer",
        "deregister_serializer",
        "inspect_serializability",
    ],
    "ray.util.check_serialize": ["FailureTuple"],
    "ray.util.queue": ["Queue"],
    "ray.util.metrics": ["Counter", "Gauge", "Histogram"],
    "ray.util.state": ["list_logs", "get_log"],
    "ray.experimental.tqdm_ray": ["tqdm", "safe_print"],
    "ray.util.multiprocessing": ["Pool"],
    "ray.util.multiprocessing.pool": [
        "AsyncResult",
        "OrderedIMapIterator",
        "UnorderedIMapIterator",
    ],
}


def signature(obj) -> list:
    out = []
    for p in inspect.signature(inspect.unwrap(obj)).parameters.values():
        rec = {"name": p.name, "kind": p.kind.name}
        if p.default is not inspect.Parameter.empty:
            rec["default"] = repr(p.default)
        out.append(rec)
    return out


def describe(obj) -> dict:
    if not inspect.isclass(obj):
        return {"kind": "function", "signature": signature(obj)}
    methods = {"__init__": signature(obj.__init__)}
    for name, member in vars(obj).items():
        if (
            not name.startswith("_")
            or name in ("__enter__", "__exit__", "__len__", "__iter__", "__next__")
        ) and callable(member):
            methods[name] = signature(member)
    for base in obj.__mro__[1:]:  # inherited public methods (the imap iterators' next)
        for name, member in vars(base).items():
            if not name.startswith("_") and callable(member) and name not in methods:
                methods[name] = signature(member)
    return {"kind": "class", "methods": methods}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--out",
        default=str(
            Path(__file__).resolve().parents[1] / "tests" / "data" / "ray_util_surface.json"
        ),
    )
    args = parser.parse_args()
    surface = {"ray_version": ray.__version__, "modules": {}}
    for module_name, names in TARGETS.items():
        module = importlib.import_module(module_name)
        surface["modules"][module_name] = {
            "all": sorted(getattr(module, "__all__", [])),
            "names": {name: describe(getattr(module, name)) for name in names},
        }
    Path(args.out).write_text(json.dumps(surface, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
