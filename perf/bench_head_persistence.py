"""The cost of the head's write-through persistence (head_tables.py): actor creation/s, named
actor creation/s and task throughput with persistence off, on SQLite (the default) and on a
Redis (appendfsync always), each in a fresh embedded cluster; then the store alone, µs per
durable write, lone and in batches.

    python perf/bench_head_persistence.py [--actors 200] [--tasks 5000]

Needs redis-server on PATH for the Redis rows (skipped, and said so, without it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CLUSTER_RUN = r"""
import json, sys, time
import zray
n_actors, n_tasks = int(sys.argv[1]), int(sys.argv[2])
zray.init(num_cpus=4)

@zray.remote(num_cpus=0)
class A:
    def ping(self):
        return 1

@zray.remote
def f():
    return 1

def head_tables():
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P
    core = runtime.core
    return core.requests.call(core.node_address, P.GetNodeStats(0), 10)[0].stats["head"]["tables"]

def actors(named):
    start = time.perf_counter()
    handles = [A.options(name=f"a{i}") .remote() if named else A.remote()
               for i in range(n_actors)]
    zray.get([h.ping.remote() for h in handles])
    rate = n_actors / (time.perf_counter() - start)
    for h in handles:
        zray.kill(h)
    return rate

zray.get([f.remote() for _ in range(200)])  # warm the workers
actors(False)  # and the zygote's first forks
start = time.perf_counter()
zray.get([f.remote() for _ in range(n_tasks)])
tasks = n_tasks / (time.perf_counter() - start)
before = head_tables()
result = {"actors/s": actors(False), "named actors/s": actors(True), "tasks/s": tasks}
after = head_tables()
# Per actor over both rounds: its creation, start and kill, as the head's loop paid for them.
result["commits/actor"] = (after["commits"] - before["commits"]) / (2 * n_actors)
result["head us/actor"] = (after["commit_s"] - before["commit_s"]) / (2 * n_actors) * 1e6
zray.shutdown()
print(json.dumps(result))
"""


def cluster_run(env: dict, n_actors: int, n_tasks: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CLUSTER_RUN, str(n_actors), str(n_tasks)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def store_costs(redis_address: str, password: str) -> list:
    from zray._private.head.store import RedisStore, SqliteStore

    rows = []
    value = os.urandom(200)

    def per_write(store, n: int, batch: int) -> float:
        start = time.perf_counter()
        for first in range(0, n, batch):
            if batch == 1:
                store.put("kv", b"k%d" % first, value)
                continue
            with store.batch() as b:
                for i in range(first, first + batch):
                    b.put("kv", b"k%d" % i, value)
        return (time.perf_counter() - start) / n * 1e6

    scratch = tempfile.mkdtemp(prefix="zray-bench-store-", dir=ROOT)
    try:
        for sync in ("NORMAL", "FULL"):
            with SqliteStore(os.path.join(scratch, sync + ".db"), synchronous=sync) as store:
                rows.append(
                    (
                        f"SQLite WAL, synchronous={sync}",
                        [per_write(store, 2000 if b == 1 else 20000, b) for b in (1, 10, 100)],
                    )
                )
    finally:
        shutil.rmtree(scratch)
    if redis_address:
        with RedisStore(redis_address, password, namespace="bench") as store:
            rows.append(
                (
                    "Redis, appendfsync always",
                    [per_write(store, 5000 if b == 1 else 20000, b) for b in (1, 10, 100)],
                )
            )
            store.clear()
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--actors", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="zbp", dir="/tmp")
    base = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    server = None
    if shutil.which("redis-server"):
        from tests.redis_server import PASSWORD, RedisServer

        server = RedisServer()
    else:
        print("redis-server is not installed: no Redis rows", file=sys.stderr)
    try:
        modes = [("off", {"ZRAY_HEAD_PERSISTENCE": "0"}), ("SQLite", {})]
        if server:
            modes.append(
                ("Redis", {"RAY_REDIS_ADDRESS": server.address, "RAY_REDIS_PASSWORD": PASSWORD})
            )
        results = {name: [] for name, _ in modes}
        for _ in range(2):  # alternate, so a noisy moment does not favour one mode
            for name, extra in modes:
                results[name].append(cluster_run(dict(base, **extra), args.actors, args.tasks))
        print(
            f"| persistence | actors/s ({args.actors}, each answered) | named actors/s | "
            f"tasks/s ({args.tasks}, async) | commits per actor | head's wait per actor |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, runs in results.items():
            best = {k: max(r[k] for r in runs) for k in runs[0]}
            wait = min(r["head us/actor"] for r in runs)
            print(
                f"| {name} | {best['actors/s']:.0f} | {best['named actors/s']:.0f} | "
                f"{best['tasks/s']:.0f} | {best['commits/actor']:.1f} | {wait:.0f} µs |"
            )
        print()
        print("| store | µs/write, lone | batches of 10 | batches of 100 |")
        print("| --- | ---: | ---: | ---: |")
        for name, costs in store_costs(
            server.address if server else "", PASSWORD if server else ""
        ):
            print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in costs) + " |")
    finally:
        if server:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
