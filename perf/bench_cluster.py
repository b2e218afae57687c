"""Multi-node figures on one machine (loopback): object transfer GB/s between two nodes,
10,000 tiny tasks over two nodes, and the time to declare a killed node dead.

    python perf/bench_cluster.py [--death-timeout 10] [--encrypt]

`--encrypt` starts the cluster with CURVE on every connection (the joined node and the driver
learn it from the head).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    ).stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--death-timeout", type=float, default=10.0)
    parser.add_argument("--encrypt", action="store_true")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="zb", dir="/tmp")
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        ZRAY_SESSION_DIR_ROOT=root,
        ZRAY_NODE_DEATH_TIMEOUT_S=str(args.death_timeout),
    )
    os.environ.update(ZRAY_SESSION_DIR_ROOT=root)
    sys.path.insert(0, ROOT)
    import zray as ray

    try:
        out = cli(
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "1",
            *(["--encrypt"] if args.encrypt else []),
            env=env,
        )
        address = re.search(r"Head address: (\S+)", out).group(1)
        token = re.search(r"Cluster token: (\S+)", out).group(1)
        out = cli(
            "start",
            f"--address={address}",
            "--num-cpus",
            "1",
            "--resources",
            '{"remote": 1}',
            "--token",
            token,
            env=env,
        )
        remote_pid = int(re.search(r"\(pid (\d+)\)", out).group(1))
        ray.init(address=address)
        import zray._private.core.runtime as runtime

        print(f"encryption: {'CURVE' if runtime.core.creds.encrypt else 'off (PLAIN auth)'}")
        while len(ray.nodes()) < 2:
            time.sleep(0.1)

        @ray.remote(resources={"remote": 1})
        def produce(nbytes):
            return np.ones(nbytes // 8)

        @ray.remote
        def tiny():
            return 0

        for size in (100 * 2**20, 1024 * 2**20):
            for store in ("cold", "warm"):  # warm: the arena's pages were used before
                ref = produce.remote(size)
                ray.wait([ref], timeout=120, fetch_local=False)  # fetch_local would pull it
                start = time.perf_counter()
                arr = ray.get(ref)  # pulled from the remote node into ours
                elapsed = time.perf_counter() - start
                assert arr.nbytes == size
                print(
                    f"object transfer {size // 2**20} MiB ({store} store): "
                    f"{size / elapsed / 1e9:.2f} GB/s ({elapsed * 1000:.0f} ms)"
                )
                del arr, ref

        ray.get([tiny.options(scheduling_strategy="SPREAD").remote() for _ in range(20)])
        start = time.perf_counter()
        refs = [tiny.remote() for _ in range(10_000)]
        ray.get(refs)
        elapsed = time.perf_counter() - start
        print(f"10,000 tiny tasks on two nodes: {10_000 / elapsed:,.0f} tasks/s")

        os.kill(remote_pid, signal.SIGKILL)
        start = time.perf_counter()
        while all(n["Alive"] for n in ray.nodes()):
            time.sleep(0.05)
        print(
            f"dead node declared after {time.perf_counter() - start:.2f} s "
            f"(node_death_timeout_s={args.death_timeout})"
        )
        ray.shutdown()
    finally:
        subprocess.run(
            [sys.executable, "-m", "zray.scripts.cli", "stop"],
            env=env,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
