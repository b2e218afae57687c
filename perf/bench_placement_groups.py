"""Placement groups on a three-node loopback cluster, zray against Ray 2.60.0 in one run:

* the time to create one group of 4 bundles ({"CPU": 1} each, SPREAD over the 3 nodes) and
  get its `ready()` ref (median of 20, the group removed between runs);
* groups created and removed per second, as Ray's microbenchmark "placement group
  create/removal" measures it: 100 groups of one {"custom": 0.001} bundle, each waited for,
  then all removed (median of 5 rounds).

    bash perf/setup_ray.sh                      # once: Ray 2.60.0 in its own venv
    python perf/bench_placement_groups.py       # prints a Markdown table

Each framework runs in its own subprocess (Ray under the venv's python, never imported here)
and starts, then stops, its own three nodes with its own CLI.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

import side_by_side

NODES, CPUS_PER_NODE, BUNDLES = 3, 2, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(framework: str, env: dict) -> str:
    """Starts NODES nodes; returns the address a driver connects to."""
    resources = json.dumps({"custom": 100})
    if framework == "zray":
        cli = [sys.executable, "-m", "zray.scripts.cli"]
        out = subprocess.run(
            cli
            + [
                "start",
                "--head",
                "--port",
                "0",
                "--num-cpus",
                str(CPUS_PER_NODE),
                "--resources",
                resources,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        address = re.search(r"Head address: (\S+)", out).group(1)
        token = re.search(r"Cluster token: (\S+)", out).group(1)
        for _ in range(NODES - 1):
            subprocess.run(
                cli
                + [
                    "start",
                    f"--address={address}",
                    "--num-cpus",
                    str(CPUS_PER_NODE),
                    "--token",
                    token,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        os.environ["ZRAY_TOKEN"] = token
        return address
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    port = free_port()
    subprocess.run(
        [
            ray_cli,
            "start",
            "--head",
            f"--port={port}",
            f"--num-cpus={CPUS_PER_NODE}",
            f"--resources={resources}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        capture_output=True,
        timeout=300,
        check=True,
    )
    for _ in range(NODES - 1):
        joined = subprocess.run(
            [
                ray_cli,
                "start",
                f"--address=127.0.0.1:{port}",
                f"--num-cpus={CPUS_PER_NODE}",
                "--disable-usage-stats",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert joined.returncode == 0, joined.stdout[-2000:] + joined.stderr[-2000:]
    return f"127.0.0.1:{port}"


def stop_cluster(framework: str, env: dict):
    if framework == "zray":
        subprocess.run(
            [sys.executable, "-m", "zray.scripts.cli", "stop"],
            env=env,
            capture_output=True,
            timeout=120,
        )
    else:
        subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ray"), "stop", "--force"],
            env=env,
            capture_output=True,
            timeout=120,
        )


def measure(framework: str) -> dict:
    """Runs in the framework's own interpreter (`inner` mode)."""
    env = dict(os.environ)
    address = start_cluster(framework, env)
    try:
        if framework == "zray":
            import zray as ray
        else:
            import ray
        from importlib import import_module

        api = import_module(f"{framework}.util.placement_group")
        ray.init(address=address, logging_level="ERROR")
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < NODES:
            assert time.monotonic() < deadline, "nodes did not join"
            time.sleep(0.1)
        total_cpu = ray.cluster_resources()["CPU"]

        ready_ms = []
        for _ in range(20):
            start = time.perf_counter()
            pg = api.placement_group([{"CPU": 1}] * BUNDLES, strategy="SPREAD")
            ray.get(pg.ready(), timeout=60)
            ready_ms.append((time.perf_counter() - start) * 1000)
            nodes = set(api.placement_group_table(pg)["bundles_to_node_id"].values())
            assert len(nodes) == NODES, nodes
            api.remove_placement_group(pg)
            deadline = time.monotonic() + 30
            while ray.available_resources().get("CPU", 0) < total_cpu:
                assert time.monotonic() < deadline, "bundles did not come back"
                time.sleep(0.01)

        rates = []
        for _ in range(5):
            start = time.perf_counter()
            pgs = [api.placement_group([{"custom": 0.001}]) for _ in range(100)]
            assert all(pg.wait(timeout_seconds=30) for pg in pgs)
            for pg in pgs:
                api.remove_placement_group(pg)
            rates.append(100 / (time.perf_counter() - start))
        ray.shutdown()
        return {
            "ready_4_bundles_ms": statistics.median(ready_ms),
            "create_remove_per_s": statistics.median(rates),
        }
    finally:
        stop_cluster(framework, env)


if __name__ == "__main__":
    side_by_side.main(
        __file__,
        measure,
        "placement groups, 3 nodes on loopback",
        [
            ("ready_4_bundles_ms", "create + ready, 4 bundles SPREAD (ms, median of 20)", True),
            ("create_remove_per_s", "create/removal (groups/s, 100 per round)", False),
        ],
        digits=1,
    )
