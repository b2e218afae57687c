"""Object transfer between nodes on loopback, zray vs Ray: one object pulled from one node by
another (100 MiB, 1 GiB), and one 1 GiB object broadcast to three nodes.

    python perf/bench_transfer.py [--frameworks zray,ray] [--nodes 4] [--rounds 3]

Each framework starts its own nodes with its own CLI (`--num-cpus 1` each, a custom resource per
node), in process groups of their own that are killed at the end (never `ray stop`, which would
stop every Ray on the machine). zray runs with `ZRAY_SAME_HOST_TRANSFER=0`, so its nodes stream
objects over TCP as between hosts (pass `--same-host` for its shared-memory shortcut); Ray moves
objects between raylets over gRPC whatever the host. Ray runs with `RAY_AUTH_MODE=disabled`.

Figures are bytes over the wall-clock time the user waits: the `get` of an object ready on
another node (`wait(fetch_local=False)` first), and for the broadcast, from submitting three
tasks that each take the object as an argument (one per node) until all three answered.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nodes:
    """The framework's nodes, each started in a session (process group) of its own."""

    def __init__(self, framework: str, count: int, store_bytes: int, env: dict):
        self.framework, self.env, self.groups = framework, env, []
        self.zray_cli = [sys.executable, "-m", "zray.scripts.cli"]
        if framework == "zray":
            out = self._run("start", "--head", "--port", "0", *self._node_args(0, store_bytes))
            self.address = re.search(r"Head address: (\S+)", out).group(1)
            token = re.search(r"Cluster token: (\S+)", out).group(1)
            env["ZRAY_TOKEN"] = token
            for i in range(1, count):
                self._run(
                    "start",
                    f"--address={self.address}",
                    "--token",
                    token,
                    *self._node_args(i, store_bytes),
                )
            return
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        temp = self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        ray = os.path.join(os.path.dirname(sys.executable), "ray")
        for i in range(count):
            where = (
                ["--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false"]
                if i == 0
                else [f"--address={self.address}"]
            )
            # One at a time (nodes started together raced for the same ports), each in a new
            # session: its daemons keep that process group, which stop() kills.
            started = subprocess.Popen(
                [
                    ray,
                    "start",
                    *where,
                    *self._node_args(i, store_bytes),
                    "--node-ip-address=127.0.0.1",
                    "--disable-usage-stats",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            self.groups.append(started.pid)
            out, _ = started.communicate(timeout=300)
            assert started.returncode == 0, out[-3000:]

    @staticmethod
    def _node_args(i: int, store_bytes: int) -> list:
        return [
            "--num-cpus",
            "1",
            "--resources",
            json.dumps({f"n{i}": 1}),
            "--object-store-memory",
            str(store_bytes),
        ]

    def _run(self, *args) -> str:
        return subprocess.run(
            self.zray_cli + list(args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

    def stop(self):
        if self.framework == "zray":
            subprocess.run(self.zray_cli + ["stop"], env=self.env, capture_output=True, timeout=120)
            return
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(3)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp, ignore_errors=True)


def measure(framework: str, nodes: int, rounds: int, sizes: list) -> dict:
    import numpy as np

    env = dict(os.environ)
    cluster = Nodes(framework, nodes, 3 * 1024 * MIB, env)
    os.environ.update({k: v for k, v in env.items() if k == "ZRAY_TOKEN"})
    results: dict = {}
    try:
        if framework == "zray":
            import zray as ray
        else:
            import ray
        ray.init(address=cluster.address, logging_level="ERROR")
        deadline = time.monotonic() + 300  # a Ray node takes ~15 s to join on a busy VM
        while len([n for n in ray.nodes() if n["Alive"]]) < nodes:
            assert time.monotonic() < deadline, "nodes did not join"
            time.sleep(0.1)

        @ray.remote(num_cpus=0)
        def produce(nbytes):
            return np.random.default_rng(0).random(nbytes // 8)  # incompressible

        @ray.remote(num_cpus=0)
        def consume(arr):
            return float(arr[-1])

        for size in sizes:
            rates = []
            for _ in range(rounds):
                ref = produce.options(resources={"n1": 0.01}).remote(size)
                ray.wait([ref], timeout=120, fetch_local=False)
                start = time.perf_counter()
                arr = ray.get(ref, timeout=300)  # pulled into the driver's node (the head)
                rates.append(size / (time.perf_counter() - start) / 1e9)
                assert arr.nbytes == size
                del arr, ref
                time.sleep(0.5)
            results[f"transfer {size // MIB} MiB GB/s"] = rates
        if nodes >= 4:
            size = 1024 * MIB
            rates = []
            for _ in range(rounds):
                ref = produce.options(resources={"n0": 0.01}).remote(size)
                ray.wait([ref], timeout=120, fetch_local=False)
                start = time.perf_counter()
                outs = ray.get(
                    [
                        consume.options(resources={f"n{i}": 0.01}).remote(ref)
                        for i in range(1, nodes)
                    ],
                    timeout=600,
                )
                elapsed = time.perf_counter() - start
                assert len(set(outs)) == 1
                rates.append((nodes - 1) * size / elapsed / 1e9)
                del ref
                time.sleep(1.0)
            results[f"broadcast 1024 MiB to {nodes - 1} nodes GB/s (sum)"] = rates
        ray.shutdown()
    except BaseException:
        traceback.print_exc()  # Ray's excepthook would hang on the stopped cluster
        sys.stderr.flush()
        cluster.stop()
        os._exit(1)
    finally:
        cluster.stop()
    return results


def ray_python() -> str:
    venv = os.environ.get("RAY_VENV") or os.path.join(
        os.path.expanduser("~"), ".zray-perf", "ray-venv"
    )
    return os.path.join(venv, "bin", "python")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frameworks", default="zray,ray")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="100,1024", help="MiB, comma separated")
    parser.add_argument("--same-host", action="store_true")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) * MIB for s in args.sizes.split(",") if s]
    if args.inner:
        found = measure(args.inner, args.nodes, args.rounds, sizes)
        print("RESULT " + json.dumps(found), flush=True)
        return
    for framework in args.frameworks.split(","):
        root = tempfile.mkdtemp(prefix="ztr", dir="/tmp")
        env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            ZRAY_SESSION_DIR_ROOT=root,
            RAY_AUTH_MODE="disabled",
            RAY_USAGE_STATS_ENABLED="0",
        )
        if not args.same_host:
            env["ZRAY_SAME_HOST_TRANSFER"] = "0"
        python = sys.executable if framework == "zray" else ray_python()
        out = subprocess.run(
            [
                python,
                os.path.abspath(__file__),
                "--inner",
                framework,
                "--nodes",
                str(args.nodes),
                "--rounds",
                str(args.rounds),
                "--sizes",
                args.sizes,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        shutil.rmtree(root, ignore_errors=True)
        found = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if not found:
            print(f"{framework}: failed\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            continue
        for name, rates in json.loads(found[0][len("RESULT ") :]).items():
            print(
                f"{framework:5} {name}: median {statistics.median(rates):.2f} "
                f"({', '.join(f'{r:.2f}' for r in rates)})"
            )


if __name__ == "__main__":
    main()
