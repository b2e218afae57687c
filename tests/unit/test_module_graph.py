"""The import graph of zray's own modules: no cycles, and lower layers never import upper ones.

Imports inside functions count too: a deferred import only hides a cycle until the day someone
moves it to the top. `from package import name` counts as importing the submodule when `name`
is one, not the package (importing any submodule runs the package's __init__ anyway).
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "zray")

# State machines: events in, instructions out, no I/O (tested without sockets).
STATE_MACHINES = {
    "zray._private.node.scheduler",
    "zray._private.node.object_table",
    "zray._private.head.object_directory",
    "zray._private.core.reference_counter",
    "zray._private.head.actor_manager",
    "zray._private.common.actor_states",
    "zray._private.core.actor_ordering",
    "zray._private.core.cancellation",
    "zray._private.node.instances",
    "zray._private.common.resources",
    "zray._private.node.placement",
    "zray._private.head.placement_groups",
    "zray._private.common.bundles",
    "zray._private.common.task_states",
    "zray._private.head.task_events",
}
# What a state machine may import: the standard library's pure parts and other state machines.
PURE_STDLIB = {
    "__future__",
    "itertools",
    "collections",
    "dataclasses",
    "typing",
    "threading",
    "random",
    "bisect",
    "heapq",
    "enum",
    "functools",
    "math",
    "re",
    "gc",  # holding collections off while merging many objects (no I/O)
}
# zray/_private's packages, each allowed to import only the packages named beside it. The wire
# layer knows no process role; the head and the core worker do not know each other; the node
# daemon hosts the head service; workers run a core worker.
ALLOWED = {
    "wire": set(),
    "common": {"wire"},
    "head": {"wire", "common"},
    "core": {"wire", "common"},
    "node": {"wire", "common", "head"},
    "worker": {"wire", "common", "core"},
}
# The public modules below every package: configuration, exceptions and ObjectRef.
FOUNDATION = {
    "zray._config",
    "zray.exceptions",
    "zray.exceptions._base",
    "zray.exceptions._task_error",
    "zray.object_ref",
}


def _modules() -> dict:
    modules = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, os.path.dirname(ROOT))[:-3]
                module = relative.replace(os.sep, ".")
                modules[module.removesuffix(".__init__")] = path
    return modules


MODULES = _modules()


def _imports(path: str) -> set:
    """Every module `path` imports (zray's and others', top names for the latter)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(node.module)
    return found


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def _own(imports: set) -> set:
    return {m for m in imports if m in MODULES}


def _cycles() -> list:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in GRAPH:
        if start in index:
            continue
        work = [(start, iter(sorted(_own(GRAPH[start]))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(_own(GRAPH[target])))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_graph_was_read():
    assert (
        len(MODULES) > 40
        and "zray._private.core.core_worker" in GRAPH["zray._private.worker.worker_main"]
    )


def test_no_import_cycles():
    assert _cycles() == []


def test_a_cycle_would_be_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "zray._private.common.resources", {"zray._private.node.scheduler"})
    assert any(
        {"zray._private.common.resources", "zray._private.node.scheduler"} <= set(component)
        for component in _cycles()
    )


@pytest.mark.parametrize("module", sorted(STATE_MACHINES))
def test_state_machines_do_no_io(module):
    others = {m for m in GRAPH[module] if m not in STATE_MACHINES}
    assert {m.split(".")[0] for m in others} <= PURE_STDLIB, others


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("zray._fast")))
def test_compiled_primitives_import_no_policy(module):
    assert {m for m in _own(GRAPH[module]) if not m.startswith("zray._fast")} <= {"zray._config"}, (
        GRAPH[module]
    )


def _package(module: str) -> str:
    """`core` for zray._private.core.x; "" for anything else."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["zray", "_private"] else ""


PRIVATE = sorted(m for m in MODULES if _package(m))


def test_every_private_module_sits_in_a_role_package():
    loose = {
        m
        for m in MODULES
        if m.startswith("zray._private.")
        and not _package(m)
        and m.removeprefix("zray._private.") not in ALLOWED
    }
    assert loose == set() and {_package(m) for m in PRIVATE} == ALLOWED.keys()


@pytest.mark.parametrize("module", PRIVATE)
def test_a_package_imports_only_the_packages_below_it(module):
    own = _package(module)
    reached = {_package(m) or m for m in _own(GRAPH[module])} - {own}
    allowed = ALLOWED[own] | FOUNDATION | {m for m in MODULES if m.startswith("zray._fast")}
    assert reached <= allowed, reached - allowed


# The web dashboard is a client of the head, as the state API is: it asks through the wire
# layer and zray.util.state, and no process role imports it (it runs as its own process).
DASHBOARD = sorted(m for m in MODULES if m == "zray.dashboard" or m.startswith("zray.dashboard."))
DASHBOARD_MAY_USE = {"wire", "common", "core"}


def test_the_dashboard_was_read():
    assert "zray.dashboard.source" in DASHBOARD and "zray.dashboard.app" in DASHBOARD


@pytest.mark.parametrize("module", DASHBOARD)
def test_the_dashboard_is_a_client_of_the_head(module):
    reached = {_package(m) or m for m in _own(GRAPH[module])}
    allowed = (
        DASHBOARD_MAY_USE
        | set(DASHBOARD)
        | FOUNDATION
        | {m for m in MODULES if m.startswith(("zray._fast", "zray.util.state"))}
        | {"zray", "zray.scripts.memory"}  # __version__; the rows `zray memory` prints
        # The Jobs API: its records (shared with the SDK), and the driver the dashboard
        # becomes to create each job's supervisor actor on the head node.
        | {m for m in MODULES if m.startswith("zray.job_submission")}
        | {"zray.util.scheduling_strategies"}
    )
    assert reached <= allowed, reached - allowed


def test_nothing_imports_the_dashboard():
    importers = {m for m in MODULES if m not in DASHBOARD and _own(GRAPH[m]) & set(DASHBOARD)}
    assert importers == set()
