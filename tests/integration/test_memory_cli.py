"""`zray memory`: objects in scope, why each process holds them, and where their bytes are."""

from __future__ import annotations

import os
import re

import numpy as np

from tests.integration.test_cli import ROOT, zray_cli


def head_address() -> str:
    import zray._private.core.runtime as runtime

    return runtime.core.head_address.split("|")[-1]


def memory(*flags) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = zray_cli("memory", "--address", head_address(), *flags, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def rows_for(output: str, object_ref) -> list:
    return [line for line in output.splitlines() if object_ref.hex() in line]


def test_memory_lists_holders_reasons_and_copies(fresh):
    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote
    class Holder:
        def hold(self, refs):
            self.ref = refs[0]
            return True

    held = ray.put(np.ones(1_000_000))  # 8 MB in the arena
    inner = ray.put(np.zeros(500_000))
    outer = ray.put([inner])  # small: inline, contains `inner`
    view = ray.get(inner)  # a live zero-copy view pins it
    holder = Holder.remote()
    assert ray.get(holder.hold.remote([held]))

    output = memory("--units", "MB", "--sort-by", "PID")
    held_rows = rows_for(output, held)
    assert any(
        "Driver" in r
        and "LOCAL_REFERENCE,BORROWED" in r
        and "8.00 MB" in r
        and "127.0.0.1:memory" in r
        for r in held_rows
    ), output
    assert any("Worker" in r and "LOCAL_REFERENCE" in r for r in held_rows), output
    (inner_row,) = rows_for(output, inner)
    assert "PINNED_IN_MEMORY" in inner_row and "CAPTURED_IN_OBJECT" in inner_row
    (outer_row,) = rows_for(output, outer)
    assert "inline" in outer_row
    assert f"driver pid {os.getpid()}" in inner_row  # owners are named by process
    assert "Plasma memory usage" in output and "2 objects" in output
    del view
    ray.kill(holder)


def test_memory_stats_only_and_entry_limit(fresh):
    ray = fresh
    ray.init(num_cpus=1)
    refs = [ray.put(np.ones(200_000)) for _ in range(3)]
    stats = memory("--stats-only")
    assert "Plasma memory usage" in stats and not any(rows_for(stats, r) for r in refs)
    limited = memory("--num-entries", "1", "--no-format", "--group-by", "STACK_TRACE")
    object_rows = [line for line in limited.splitlines() if re.search(r"\b[0-9a-f]{56}\b", line)]
    assert len(object_rows) == 1, limited


def test_memory_without_a_cluster_says_so():
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = zray_cli("memory", "--address", "127.0.0.1:1", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("zray memory: ") and "127.0.0.1:1" in result.stderr


def test_memory_shows_spilled_copies(fresh):
    ray = fresh
    ray.init(num_cpus=1, object_store_memory=100 * 2**20)
    refs = [ray.put(np.full(5_000_000, i, dtype=np.float64)) for i in range(4)]  # 4 x 40 MB
    output = memory("--units", "MB")
    states = [row for ref in refs for row in rows_for(output, ref)]
    assert any(":spilled" in row for row in states), output
    assert any(":memory" in row for row in states), output
    assert "Spilled 0 MiB" not in output
