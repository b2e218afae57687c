"""Two zray checkouts side by side on the call path (issue 20, parts 4 and 5): wall-clock rate
and CPU time per call by process, each run in a fresh process with its own 2-CPU cluster,
alternating the two checkouts and flipping the order every pair.

    python perf/bench_call_path.py --before /path/to/base --after . --pairs 5
    python perf/bench_call_path.py --before B --after . --only "tasks sync" --only clients

A checkout is a directory holding the `zray` package with its Cython modules built, e.g.
`git archive REV | tar -x -C DIR && (cd DIR && python setup.py -q build_ext --inplace)`.

CPU time per call is the steadier figure on a shared machine: other people's load slows the
wall clock of a run far more than it changes the CPU the run itself needs (bench_task_events.py
measures the same way). "owners" are the actors that submit tasks in the multi-client rows;
"workers" every other process forked for the cluster. Spinning before sleeping
(ZRAY_SPIN_WAIT_US) is CPU too: set it to 0 to count only the work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from process_cpu import ROLES, cluster_cpu_s, per_call_us

WORKLOADS = {
    # name: (calls per repetition, repetitions)
    "tasks sync": (2000, 1),
    "actor calls sync": (2000, 1),
    "tasks async": (1000, 5),
    "actor calls async": (1000, 10),
    "multi client tasks async, 1 client": (10000, 1),
    "multi client tasks async, 4 clients": (2500, 1),
    "wait 1k ready refs": (1000, 1),
}


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

        @ray.remote(num_cpus=0)
        class Client:
            def pid(self):
                return os.getpid()

            def small_value_batch(self, n):
                ray.get([small_value.remote() for _ in range(n)])

        calls, reps = WORKLOADS[workload]
        owners: list = []
        if workload == "tasks sync":
            body = lambda: [ray.get(small_value.remote()) for _ in range(calls)]  # noqa: E731
        elif workload == "tasks async":
            body = lambda: ray.get([small_value.remote() for _ in range(calls)])  # noqa: E731
        elif workload.startswith("multi client"):
            owners = [Client.remote() for _ in range(4 if workload.endswith("4 clients") else 1)]
            body = lambda: ray.get([c.small_value_batch.remote(calls) for c in owners])  # noqa: E731
            calls *= len(owners)
        elif workload == "wait 1k ready refs":
            refs = [small_value.remote() for _ in range(1000)]
            ray.get(refs)
            body = lambda: [ray.wait(refs, num_returns=len(refs)) for _ in range(calls)]  # noqa: E731
        else:
            actor = Actor.remote()
            if workload == "actor calls sync":
                body = lambda: [ray.get(actor.small_value.remote()) for _ in range(calls)]  # noqa: E731
            else:
                body = lambda: ray.get([actor.small_value.remote() for _ in range(calls)])  # noqa: E731
        body()  # warm up: workers started, functions loaded, leases held
        owner_pids = set(ray.get([c.pid.remote() for c in owners])) if owners else set()
        time.sleep(0.5)
        cpu0, t0 = cluster_cpu_s(owner_pids), time.perf_counter()
        for _ in range(reps):
            body()
        wall = time.perf_counter() - t0
        cpu1 = cluster_cpu_s(owner_pids)
        n = calls * reps
        per_role = per_call_us(cpu0, cpu1, n)
        return {
            "rate": n / wall,
            "cpu_us": sum(per_role.values()),
            "load": os.getloadavg()[0],
            **per_role,
        }
    finally:
        ray.shutdown()


def run(checkout: str, workload: str) -> dict | None:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    try:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", workload],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            timeout=300,
            cwd="/",
        ).stdout
    except subprocess.TimeoutExpired:
        return None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="checkout directory (base); required unless --child")
    parser.add_argument("--after", default=".", help="checkout directory (default: here)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="workload name substring")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    if not args.before:
        parser.error("--before is required")
    names = [n for n in WORKLOADS if not args.only or any(o in n for o in args.only)]
    print(
        "| workload | calls/s before | calls/s after | CPU µs/call before | CPU µs/call after "
        "| load |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        results: dict = {"before": [], "after": []}
        for i in range(args.pairs):
            for side in ("before", "after") if i % 2 == 0 else ("after", "before"):
                result = run(getattr(args, side), name)
                if result is not None:
                    results[side].append(result)
        if not results["before"] or not results["after"]:
            print(f"| {name} | ? | ? | ? | ? | |")
            continue
        rate = {k: statistics.median(r["rate"] for r in v) for k, v in results.items()}
        cpu = {k: statistics.median(r["cpu_us"] for r in v) for k, v in results.items()}
        loads = [r["load"] for v in results.values() for r in v]
        print(
            f"| {name} | {rate['before']:,.0f} | {rate['after']:,.0f} | {cpu['before']:.1f} "
            f"| {cpu['after']:.1f} | {min(loads):.0f}-{max(loads):.0f} |",
            flush=True,
        )
        for side in ("before", "after"):
            roles = ", ".join(
                f"{role} {statistics.median(r[role] for r in results[side]):.1f}" for role in ROLES
            )
            print(
                f"  {name} {side}: CPU us/call by process (medians): {roles}; runs: "
                + ", ".join(f"{r['rate']:.0f}/s {r['cpu_us']:.1f}us" for r in results[side]),
                file=sys.stderr,
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
