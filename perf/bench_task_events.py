"""What task events cost: each workload runs in a fresh process (its own embedded cluster)
with task events on, then off, alternating; reported as throughput and as CPU time per call
summed over every process of the cluster (driver, node daemon with the head, workers).

    python perf/bench_task_events.py                  # every workload, 5 on/off pairs
    python perf/bench_task_events.py --pairs 9 --only "tasks sync"
    python perf/bench_task_events.py --micro          # the added work per task, in-process
    python perf/bench_task_events.py --toggle 8       # async actor calls, on/off in one cluster
    python perf/bench_task_events.py --toggle 8 --toggle-workload all   # tasks and actor calls, sync and async, the same way

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

from process_cpu import cluster_cpu_s, per_call_us

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
        cpu1 = cluster_cpu_s()
        n = calls * reps
        per_role = per_call_us(cpu0, cpu1, n)
        return {"rate": n / wall, "cpu_us": sum(per_role.values()), **per_role}
    finally:
        ray.shutdown()


def micro(trials: int = 30, n: int = 2000) -> dict:
    """The added work per task measured in this one process, the least of `trials` runs of
    `n` tasks (the minimum is what the code costs; the rest is other load): recording as the
    submitter and executor do it (a task with its arguments ready: one event as its owner,
    one as its executor, each packed as recorded), the flush (taking the bytes), and the
    head's decoding and merging."""
    import gc

    import msgpack

    from zray._fast import Finished, Shared
    from zray._private.common import task_states as TS
    from zray._private.core.task_events import TaskEvents, _failure_wire, now
    from zray._private.head.task_events import TaskEventTable
    from zray._private.wire import protocol as P

    class Core:
        node_id, worker_id, head_address = b"n" * 28, b"w" * 28, "nowhere"

    ids = [os.urandom(24) for _ in range(n)]
    info = Shared((TS.NORMAL_TASK, "f", "f", b"", b"p" * 24, (("CPU", 1.0),), "", ""))
    lease = Shared((b"n" * 28, b"w" * 28))
    best = {"record": 1e9, "flush": 1e9, "head": 1e9}
    for _ in range(trials):
        events = TaskEvents(Core())
        record = events.record
        t0 = time.thread_time()
        for task_id in ids:  # worker: the run; owner: the end, saying its sending
            started = events.run_started(task_id, 0)
            events.run_ended(task_id, 0, started)
            record(Finished(task_id, 0, now(), now(), info, now(), lease))
        t1 = time.thread_time()
        packed, _ = events.events.take(_failure_wire)  # the batch travels as its own frame
        frames = P.encode(P.AddTaskEvents(b"n" * 28, b"w" * 28, 1, b"", 0)) + [packed]
        t2 = time.thread_time()
        msg, _, _ = P.decode(frames[0], frames[1])
        gc.disable()  # as the head does (TaskEventTable.merge)
        unpacked = msgpack.unpackb(frames[2], raw=False, use_list=False, strict_map_key=False)
        TaskEventTable(100_000).add(msg.node_id, msg.worker_id, msg.pid, unpacked, 0)
        gc.enable()
        t3 = time.thread_time()
        for key, spent in (("record", t1 - t0), ("flush", t2 - t1), ("head", t3 - t2)):
            best[key] = min(best[key], 1e6 * spent / n)
    best["bytes"] = sum(len(f) for f in frames) / n
    return best


def micro_actor_calls(trials: int = 30, n: int = 2000) -> dict:
    """An actor call's events, as the owner, the actor's worker and the head handle them now:
    the owner records one event (its end, carrying when it was sent), the worker one (the
    run), each flush scans the calls in flight, and the head keeps the batch packed ("head");
    "merge" is what the head pays per call once someone asks (a state query)."""
    import gc

    from zray._fast import Finished
    from zray._private.core.actor_submitter import ActorCall, ActorRecord
    from zray._private.core.task_events import TaskEvents, _failure_wire, now
    from zray._private.head.task_events import TaskEventTable
    from zray._private.wire import protocol as P

    class Core:
        node_id, worker_id, head_address = b"n" * 28, b"w" * 28, "nowhere"

    ids = [os.urandom(24) for _ in range(n)]
    best = {"record": 1e9, "flush": 1e9, "head": 1e9, "merge": 1e9}
    for _ in range(trials):
        events = TaskEvents(Core())
        record = events.record
        calls = [ActorCall(task_id, "m", 1, [], [b""], [], 0, [], "", -1) for task_id in ids]
        actor = ActorRecord(b"a" * 16, "A")
        t0 = time.thread_time()
        for call in calls:  # owner: described at submission, sent, ended; worker: the run
            call.info = actor.info(call.method, b"p" * 24)
            call.sent_ns = now()
            started = events.run_started(call.task_id, 0)
            events.run_ended(call.task_id, 0, started)
            sent, call.sent_ns = call.sent_ns, 0
            info, call.info = call.info, ()
            record(Finished(call.task_id, 0, now(), sent, info))
        t1 = time.thread_time()
        packed, _ = events.events.take(_failure_wire)  # as TaskEvents.flush: its own frame
        frames = P.encode(P.AddTaskEvents(b"n" * 28, b"w" * 28, 1, b"", 0)) + [packed]
        t2 = time.thread_time()
        msg, _, _ = P.decode(frames[0], frames[1])
        table = TaskEventTable(100_000, decode=_decode)
        table.add_packed(msg.node_id, msg.worker_id, msg.pid, memoryview(frames[2]), 0)
        t3 = time.thread_time()
        gc.collect()
        t4 = time.thread_time()
        table.merge()
        t5 = time.thread_time()
        for key, spent in (("record", t1 - t0), ("flush", t2 - t1), ("head", t3 - t2)):
            best[key] = min(best[key], 1e6 * spent / n)
        best["merge"] = min(best["merge"], 1e6 * (t5 - t4) / n)
    best["bytes"] = sum(len(f) for f in frames) / n
    return best


def _decode(packed: bytes) -> tuple:
    import msgpack

    return msgpack.unpackb(packed, raw=False, use_list=False, strict_map_key=False)


TOGGLED = {  # --toggle-workload: how one batch of 1,000 calls is made and awaited
    "actor calls async": lambda ray, actor, f: ray.get(
        [actor.small_value.remote() for _ in range(1000)]
    ),
    "tasks sync": lambda ray, actor, f: [ray.get(f.remote()) for _ in range(1000)],
    "tasks async": lambda ray, actor, f: ray.get([f.remote() for _ in range(1000)]),
    "actor calls sync": lambda ray, actor, f: [
        ray.get(actor.small_value.remote()) for _ in range(1000)
    ],
}


def toggled(rounds: int, calls: int = 5000, workload: str = "actor calls async") -> dict:
    """Small calls (`workload`, TOGGLED) in ONE cluster, the driver's task events switched off
    and on in turn (off, on, on, off, ...): with them off the driver sends calls without an attempt and
    the actor's worker records nothing, so the whole chain is switched with the same processes,
    which a loaded machine perturbs far less than fresh clusters. CPU us per call by process
    (medians over the rounds of each setting), each window closed a report interval and 0.3 s
    after its last call so both sides' batches have gone out and reached the head. The rate
    counts a batch's sending only if a report interval ends within the window: run with
    --report-interval-ms well under a window (e.g. 100) for the rate to pay for it too."""
    import psutil

    import zray as ray
    from zray._private.core import runtime

    ray.init(num_cpus=2)
    try:

        @ray.remote
        class Actor:
            def small_value(self):
                return b"ok"

            def pid(self):
                return os.getpid()

        @ray.remote
        def small_value():
            return b"ok"

        batch = TOGGLED[workload]
        actor = Actor.remote()
        ray.get([small_value.remote() for _ in range(20)])  # its workers started
        me = psutil.Process()
        processes = {
            "driver": me,
            "node": next(
                p
                for p in me.children(recursive=True)
                if "zray.scripts.node" in " ".join(p.cmdline())
            ),
            "workers": [  # and the zygote and dashboard, idle here
                p
                for p in me.children(recursive=True)
                if "zray.scripts.node" not in " ".join(p.cmdline())
            ],
        }

        def cpu():
            return {
                k: sum(q.cpu_times().user + q.cpu_times().system for q in procs)
                if isinstance(procs, list)
                else procs.cpu_times().user + procs.cpu_times().system
                for k, procs in processes.items()
            }

        from zray._config import config

        settle_s = config.task_events_report_interval_ms / 1000 + 0.3
        for _ in range(3):
            batch(ray, actor, small_value)
        spent: dict = {True: [], False: []}
        for i in range(2 * rounds):
            on = i % 4 in (1, 2)
            runtime.core.task_events.enabled = on
            time.sleep(settle_s)
            before, started = cpu(), time.perf_counter()
            for _ in range(calls // 1000):
                batch(ray, actor, small_value)
            rate = calls / (time.perf_counter() - started)
            time.sleep(settle_s)
            after = cpu()
            spent[on].append({k: 1e6 * (after[k] - before[k]) / calls for k in after})
            spent[on][-1]["calls/s"] = rate
        return {
            ("on" if on else "off"): {
                k: statistics.median(r[k] for r in runs)
                for k in ("driver", "node", "workers", "calls/s")
            }
            for on, runs in spent.items()
        }
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
    parser.add_argument(
        "--micro", action="store_true", help="only the added work per task, in-process"
    )
    parser.add_argument(
        "--toggle",
        type=int,
        metavar="ROUNDS",
        help="small async actor calls, events toggled in one cluster (see toggled())",
    )
    parser.add_argument(
        "--toggle-workload",
        choices=[*sorted(TOGGLED), "all"],
        default="actor calls async",
        help="what --toggle calls",
    )
    parser.add_argument(
        "--report-interval-ms",
        type=int,
        help="with --toggle: every process's task_events_report_interval_ms (default 1000)",
    )
    args = parser.parse_args(argv)
    if args.report_interval_ms:
        os.environ["ZRAY_TASK_EVENTS_REPORT_INTERVAL_MS"] = str(args.report_interval_ms)
    if args.toggle:
        workloads = sorted(TOGGLED) if args.toggle_workload == "all" else [args.toggle_workload]
        for workload in workloads:
            result = toggled(args.toggle, workload=workload)
            rates = {setting: roles.pop("calls/s") for setting, roles in result.items()}
            for setting, roles in result.items():
                rate = rates[setting]
                total = sum(roles.values())
                print(
                    f"{workload}, events {setting}: {rate:,.0f} calls/s (median); CPU us/call "
                    + ", ".join(f"{k} {v:.1f}" for k, v in roles.items())
                    + f"; total {total:.1f}"
                )
            print(f"{workload}: events cost {100 * (1 - rates['on'] / rates['off']):+.1f}%")
        return 0
    if args.micro:
        cost = micro()
        print(
            f"per task: recording {cost['record']:.2f} us (owner and worker threads), "
            f"flush {cost['flush']:.2f} us (I/O thread), head {cost['head']:.2f} us "
            f"(decode and merge); {cost['bytes']:.0f} bytes on the wire"
        )
        cost = micro_actor_calls()
        print(
            f"per actor call: recording {cost['record']:.2f} us (owner and worker threads), "
            f"flush {cost['flush']:.2f} us (I/O thread), head {cost['head']:.2f} us "
            f"(kept packed), {cost['merge']:.2f} us more when queried (decode and merge); "
            f"{cost['bytes']:.0f} bytes on the wire"
        )
        return 0
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
            roles = ", ".join(
                f"{role} {statistics.median(r[role] for r in results[events]):.1f}"
                for role in ("driver", "node", "workers")
            )
            print(
                f"  {name} events {'on' if events else 'off'}: CPU us/call by process "
                f"(medians): {roles}; runs: "
                + ", ".join(f"{r['rate']:.0f}/s {r['cpu_us']:.1f}us" for r in results[events]),
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
