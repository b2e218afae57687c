"""Where a sync task's task events cost goes: sync tasks in ONE cluster, events switched off
and on in turn (off, on, on, off, ...) on both sides, on the worker only (the driver's on) or
on the driver only (the worker's off), with the CPU per task of the driver and of the worker
(every thread, from /proc/<pid>/task/*/schedstat) and the latency, medians over the windows.

    python perf/events_sync_split.py                       # both, worker, driver
    ZRAY_SPIN_WAIT_US=0 python perf/events_sync_split.py   # CPU without spinning: the work
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def process_ns(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just exited
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--tasks", type=int, default=2000, help="sync tasks per window")
    args = parser.parse_args()

    import zray as ray
    from zray._private.core import runtime

    ray.init(num_cpus=2, include_dashboard=False)

    @ray.remote
    def small_value():
        return os.getpid()

    @ray.remote
    def set_worker_events(on: bool):
        from zray._private.core import runtime as worker_runtime

        worker_runtime.core.task_events.enabled = on
        return os.getpid()

    workers = {ray.get(small_value.remote()) for _ in range(2000)}
    driver = os.getpid()
    for toggled in ("both", "worker", "driver"):
        spent: dict = {True: [], False: []}
        for i in range(args.windows):
            on = i % 4 in (1, 2)
            worker_on = on if toggled != "driver" else False
            runtime.core.task_events.enabled = on if toggled != "worker" else True
            for _ in range(50):  # the one leased worker takes them all, in practice
                workers.add(ray.get(set_worker_events.remote(worker_on)))
            before = {pid: process_ns(pid) for pid in workers | {driver}}
            start = time.perf_counter()
            for _ in range(args.tasks):
                ray.get(small_value.remote())
            wall = time.perf_counter() - start
            used = {pid: (process_ns(pid) - ns) / args.tasks / 1000 for pid, ns in before.items()}
            worker_us = sum(us for pid, us in used.items() if pid != driver)
            spent[on].append((used[driver], worker_us, 1e6 * wall / args.tasks))
        for on in (False, True):
            driver_us, worker_us, latency = (statistics.median(c) for c in zip(*spent[on]))
            print(
                f"{toggled:6} events {'on ' if on else 'off'}: driver {driver_us:.1f} us, "
                f"worker {worker_us:.1f} us of CPU per task; latency {latency:.1f} us"
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
