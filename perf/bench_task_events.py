"""What task events cost: each workload runs in a fresh process (its own embedded cluster)
with task events on, then off, alternating; reported as throughput and as CPU time per call
summed over every process of the cluster (driver, node daemon with the head, workers).

    python perf/bench_task_events.py                  # every workload, 5 on/off pairs
    python perf/bench_task_events.py --pairs 9 --only "tasks sync"

CPU time per call is the steadier measure on a shared machine: other people's load slows the
wall clock of a run far more than it changes how much CPU the run itself needs. It includes
the head merging the events: the window ends 1.5 s after the last call, once every process has
sent its batch (the same wait with events off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKLOADS = {
    # name: (calls per repetition, repetitions)
    "tasks sync": (3000, 1),
    "tasks async": (1000, 10),
    "actor calls sync": (3000, 1),
    "actor calls async": (1000, 20),
    "async-actor calls async": (1000, 20),
}
SETTLE_S = 1.5  # every process sends its events within a second


def cluster_cpu_s() -> float:
    import psutil

    me = psutil.Process()
    total = 0.0
    for process in [me] + me.children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def child(workload: str) -> dict:
    import zray as ray

    ray.init(num_cpus=2)
    try:

        @ray.remote
        def small_value():
            return b"ok"

        @ray.remote
        class Actor:
            def small_value(self):
                return b"ok"

        @ray.remote
        class AsyncActor:
            async def small_value(self):
                return b"ok"

        calls, reps = WORKLOADS[workload]
        if workload == "tasks sync":
            body = lambda: [ray.get(small_value.remote()) for _ in range(calls)]  # noqa: E731
        elif workload == "tasks async":
            body = lambda: ray.get([small_value.remote() for _ in range(calls)])  # noqa: E731
        else:
            actor = (AsyncActor if workload.startswith("async") else Actor).remote()
            if workload.endswith("sync") and not workload.endswith("async"):
                body = lambda: [ray.get(actor.small_value.remote()) for _ in range(calls)]  # noqa: E731
            else:
                body = lambda: ray.get([actor.small_value.remote() for _ in range(calls)])  # noqa: E731
        body()  # warm up: workers started, functions loaded
        time.sleep(SETTLE_S)
        cpu0, t0 = cluster_cpu_s(), time.perf_counter()
        for _ in range(reps):
            body()
        wall = time.perf_counter() - t0
        time.sleep(SETTLE_S)
        cpu = cluster_cpu_s() - cpu0
        n = calls * reps
        return {"rate": n / wall, "cpu_us": 1e6 * cpu / n}
    finally:
        ray.shutdown()


def run(workload: str, events: bool) -> dict | None:
    env = dict(os.environ, PYTHONPATH=REPO, ZRAY_ENABLE_TASK_EVENTS="1" if events else "0")
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", workload],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=300,
        cwd="/",
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="on/off runs per workload")
    parser.add_argument("--only", action="append", default=[], help="workload name substring")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    names = [n for n in WORKLOADS if not args.only or any(o in n for o in args.only)]
    print(
        "| workload | calls/s off | calls/s on | change | CPU µs/call off | CPU µs/call on "
        "| change |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        results: dict = {True: [], False: []}
        for i in range(args.pairs):
            for events in (False, True) if i % 2 == 0 else (True, False):
                result = run(name, events)
                if result is not None:
                    results[events].append(result)
        if not results[True] or not results[False]:
            print(f"| {name} | ? | ? | ? | ? | ? | ? |")
            continue
        rate = {k: statistics.median(r["rate"] for r in v) for k, v in results.items()}
        cpu = {k: statistics.median(r["cpu_us"] for r in v) for k, v in results.items()}
        print(
            f"| {name} | {rate[False]:,.0f} | {rate[True]:,.0f} "
            f"| {100 * (rate[True] / rate[False] - 1):+.1f}% | {cpu[False]:.1f} "
            f"| {cpu[True]:.1f} | {100 * (cpu[True] / cpu[False] - 1):+.1f}% |",
            flush=True,
        )
        for events in (False, True):
            print(
                f"  {name} events {'on' if events else 'off'}: "
                + ", ".join(f"{r['rate']:.0f}/s {r['cpu_us']:.1f}us" for r in results[events]),
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
