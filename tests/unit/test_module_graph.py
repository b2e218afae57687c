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
    "zray._private.scheduler", "zray._private.object_table", "zray._private.object_directory",
    "zray._private.reference_counter", "zray._private.actor_manager",
    "zray._private.actor_ordering", "zray._private.cancellation", "zray._private.instances",
    "zray._private.resources", "zray._private.placement", "zray._private.placement_groups",
    "zray._private.bundles",
}
# What a state machine may import: the standard library's pure parts and other state machines.
PURE_STDLIB = {"__future__", "itertools", "collections", "dataclasses", "typing", "threading",
               "random", "bisect", "heapq", "enum", "functools", "math", "re"}
# The wire layer: records, framing and transport, shared by every process role.
WIRE = {"zray._private.protocol", "zray._private.transport", "zray._private.security",
        "zray._private.direct", "zray._private.pacing", "zray._private.push_checks"}
# Process roles and the public surface, which the wire layer must not know about.
ROLES_AND_SURFACE = {
    "zray._private.core_worker", "zray._private.worker_main", "zray._private.actor_host",
    "zray._private.node", "zray._private.head", "zray._private.task_submitter",
    "zray._private.actor_submitter", "zray._private.driver", "zray.api", "zray.actor",
    "zray.remote_function", "zray.runtime_context",
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
    assert len(MODULES) > 40 and "zray._private.core_worker" in GRAPH["zray._private.worker_main"]


def test_no_import_cycles():
    assert _cycles() == []


def test_a_cycle_would_be_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "zray._private.resources", {"zray._private.scheduler"})
    assert any({"zray._private.resources", "zray._private.scheduler"} <= set(component)
               for component in _cycles())


@pytest.mark.parametrize("module", sorted(STATE_MACHINES))
def test_state_machines_do_no_io(module):
    others = {m for m in GRAPH[module] if m not in STATE_MACHINES}
    assert {m.split(".")[0] for m in others} <= PURE_STDLIB, others


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("zray._fast")))
def test_compiled_primitives_import_no_policy(module):
    assert {m for m in _own(GRAPH[module]) if not m.startswith("zray._fast")} <= {
        "zray._config"}, GRAPH[module]


@pytest.mark.parametrize("module", sorted(WIRE))
def test_the_wire_layer_knows_no_process_role(module):
    assert not _own(GRAPH[module]) & ROLES_AND_SURFACE
