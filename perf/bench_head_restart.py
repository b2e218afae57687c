"""Head restart: a loopback cluster (the head's node and two others, started with `zray
start`, the head's state in SQLite or Redis) runs tasks on the two other nodes and an actor,
with a driver attached to one of them; the head is SIGKILLed and started again on its state.
Reported: how long the restarted head took to start, until the driver was back, until every
node was back (the head finished resuming), and how many tasks and actor calls in flight across
the restart were lost (must be 0).

    python perf/bench_head_restart.py [--rounds 3] [--tasks 200] [--redis]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def one_round(n_tasks: int, redis: bool) -> dict:
    import pytest

    import zray
    from tests.head_cluster import RestartableCluster, wait_for
    from zray._config import config
    from zray._private.core import runtime
    from zray._private.wire import protocol as P

    extra = {}
    server = None
    if redis:
        from tests.redis_server import PASSWORD, RedisServer

        server = RedisServer()
        extra = {"RAY_REDIS_ADDRESS": server.address, "RAY_REDIS_PASSWORD": PASSWORD}
    cluster = RestartableCluster(reconnect_timeout_s=60.0, extra_env=extra)
    monkeypatch = pytest.MonkeyPatch()
    try:
        cluster.start_head()
        cluster.add_node("w1", num_cpus=2)
        cluster.add_node("w2", num_cpus=2)
        cluster.connect_driver(zray, monkeypatch, "w1")
        core = runtime.core

        @zray.remote(num_cpus=0.5)
        def work(i):
            time.sleep(0.05)
            return i

        @zray.remote(num_cpus=0)
        class Counter:
            def __init__(self):
                self.n = 0

            def add(self):
                self.n += 1
                return self.n

        counter = Counter.options(resources={"w2": 0.1}).remote()
        assert zray.get(counter.add.remote(), timeout=60) == 1
        zray.get([work.options(resources={"w1": 0.01}).remote(i) for i in range(8)], timeout=60)
        refs = [
            work.options(resources={"w1" if i % 2 else "w2": 0.01}).remote(i)
            for i in range(n_tasks)
        ]
        calls = [counter.add.remote() for _ in range(50)]
        time.sleep(0.2)
        killed = time.monotonic()
        cluster.kill_head()
        cluster.start_head()
        started = time.monotonic()
        wait_for(
            lambda: not core.head_link.down_since and core.head_link.restorations, 60, "driver"
        )
        driver_back = time.monotonic()

        def recovery():
            reply, _ = core.requests.call(core.head_address, P.GetNodes(False), 10)
            head = next(n for n in reply.nodes if n["is_head"] and n["alive"])
            stats, _ = core.requests.call(head["address"], P.GetNodeStats(0), 10)
            rec = stats.stats["head"]["recovery"]
            return rec if "resumed_in_s" in rec else None

        rec = wait_for(recovery, 60, "the head to finish resuming", interval=0.02)
        nodes_back = time.monotonic()
        lost = 0
        for i, ref in enumerate(refs):
            try:
                lost += zray.get(ref, timeout=120) != i
            except Exception:
                lost += 1
        got = zray.get(calls, timeout=120)
        lost_calls = len(calls) - len(set(got))
        assert zray.get(counter.add.remote(), timeout=60) == 52
        return {
            "head_start_s": round(started - killed, 3),
            "driver_back_s": round(driver_back - killed, 3),
            "nodes_back_s": round(nodes_back - killed, 3),
            "head_resumed_in_s": rec["resumed_in_s"],
            "tasks_lost": lost,
            "actor_calls_lost": lost_calls,
        }
    finally:
        zray.shutdown()
        monkeypatch.undo()
        config.token = ""
        cluster.stop(check_leaks=False)
        if server is not None:
            server.stop()
        from tests.conftest import assert_no_leaks

        assert_no_leaks(*cluster.before, timeout=20)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--redis", action="store_true", help="the head's state in a Redis")
    args = parser.parse_args()
    os.environ.setdefault("ZRAY_SESSION_DIR_ROOT", "/tmp/zray-bench-restart")
    rounds = [one_round(args.tasks, args.redis) for _ in range(args.rounds)]
    for r in rounds:
        print(json.dumps(r))
    keys = rounds[0].keys()
    summary = {k: statistics.median(r[k] for r in rounds) for k in keys}
    summary["tasks_lost"] = sum(r["tasks_lost"] for r in rounds)
    summary["actor_calls_lost"] = sum(r["actor_calls_lost"] for r in rounds)
    print("median:", json.dumps(summary))


if __name__ == "__main__":
    main()
