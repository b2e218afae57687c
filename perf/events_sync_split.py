"""What task events cost a call, and on which side: sync tasks or actor calls (or async ones:
a window's calls submitted at once, then one get of all) in ONE cluster, events switched off and on in ABBA blocks of short windows (off, on, on, off;
then on, off, off, on), on both sides, on the driver only (the worker's stay off) or on the
worker only (the driver's stay on). The figure is the median over blocks of each block's
difference (on - off): a block lasts ~0.1 s, so the machine's slow drift, which moves a
window's latency by more than the effect, cancels within it. The mean difference is given
too: a window holding a batch's flush (one a second) is an outlier the median leaves out.

    python perf/events_sync_split.py                          # tasks: both, driver, worker
    python perf/events_sync_split.py --work actor --blocks 300
    python perf/events_sync_split.py --work task --async --window 2000 --sides both
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def process_cpu_us(pid: int) -> float:
    """CPU time of every thread of `pid` so far (us), from /proc/<pid>/task/*/schedstat."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just exited
    return total / 1000


def descendants(root: int) -> list:
    """The pids under `root` (its node, head and workers), from /proc/*/stat."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=200, help="ABBA blocks per side")
    parser.add_argument("--window", type=int, default=500, help="sync calls per window")
    parser.add_argument("--work", choices=("task", "actor"), default="task")
    parser.add_argument("--sides", default="both,driver,worker")
    parser.add_argument(
        "--async", dest="pipelined", action="store_true", help="a window's calls at once"
    )
    args = parser.parse_args()

    import zray as ray
    from zray._private.core import runtime

    ray.init(num_cpus=2, include_dashboard=False)

    @ray.remote
    def small_value():
        return 1

    @ray.remote
    def set_worker_events(on: bool):
        from zray._private.core import runtime as worker_runtime

        worker_runtime.core.task_events.enabled = on
        time.sleep(0.002)  # so that a burst of these reaches every worker
        return os.getpid()

    @ray.remote
    class Echo:
        def small_value(self):
            return 1

        def set_events(self, on: bool):
            from zray._private.core import runtime as worker_runtime

            worker_runtime.core.task_events.enabled = on
            return os.getpid()

    if args.work == "actor":
        echo = Echo.remote()
        call, set_events = echo.small_value, echo.set_events
    else:  # the one leased worker takes them all, in practice
        call, set_events = small_value, set_worker_events
    for _ in range(3000):
        ray.get(call.remote())
    core = runtime.core

    driver = os.getpid()

    others = descendants(driver)

    def others_cpu_us() -> dict:
        """pid -> CPU so far (us), of every other process of the runtime."""
        return {pid: process_cpu_us(pid) for pid in others if os.path.exists(f"/proc/{pid}")}

    def name(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                words = f.read().split(b"\0")
            return " ".join(w.decode()[-30:] for w in words[:3])
        except OSError:
            return "?"

    def window() -> tuple:
        """(latency, the driver's CPU, the rest of the runtime's CPU) per call, in us."""
        for _ in range(50):
            ray.get(call.remote())
        cpu = process_cpu_us(driver)
        rest = others_cpu_us()
        start = time.perf_counter()
        if args.pipelined:
            ray.get([call.remote() for _ in range(args.window)])
        else:
            for _ in range(args.window):
                ray.get(call.remote())
        wall = time.perf_counter() - start
        after = others_cpu_us()
        by_pid = {pid: (after[pid] - rest.get(pid, 0)) / args.window for pid in after}
        return 1e6 * wall / args.window, (process_cpu_us(driver) - cpu) / args.window, by_pid

    for side in args.sides.split(","):
        offs, ons, diffs, cpu_diffs, rest_diffs = [], [], [], [], []
        by_process: dict = {}
        for block in range(args.blocks):
            order = (False, True, True, False) if block % 2 == 0 else (True, False, False, True)
            latency: dict = {False: [], True: []}
            cpu: dict = {False: [], True: []}
            rest: dict = {False: [], True: []}
            for on in order:
                core.task_events.enabled = on if side != "worker" else True
                worker_on = on if side != "driver" else False
                # On every worker the calls run on: async tasks lease two (a burst of these
                # reaches both); sync ones one, which a burst would make them alternate with.
                burst = 4 if args.pipelined and args.work == "task" else 1
                for _ in range(20):
                    ray.get([set_events.remote(worker_on) for _ in range(burst)])
                took, used, used_elsewhere = window()
                latency[on].append(took)
                cpu[on].append(used)
                rest[on].append(used_elsewhere)
            off, on_ = statistics.mean(latency[False]), statistics.mean(latency[True])
            offs.append(off)
            ons.append(on_)
            diffs.append(on_ - off)
            cpu_diffs.append(statistics.mean(cpu[True]) - statistics.mean(cpu[False]))
            rest_diffs.append(
                statistics.mean(sum(r.values()) for r in rest[True])
                - statistics.mean(sum(r.values()) for r in rest[False])
            )
            for pid in rest[True][0]:
                by_process.setdefault(pid, []).append(
                    statistics.mean(r.get(pid, 0) for r in rest[True])
                    - statistics.mean(r.get(pid, 0) for r in rest[False])
                )
        quartiles = statistics.quantiles(diffs, n=4)
        median_off = statistics.median(offs)
        mean_diff = statistics.mean(diffs)
        print(
            f"{args.work}{' async' if args.pipelined else ''} {side:6}: off {median_off:.1f} us, "
            f"on {statistics.median(ons):.1f} us per call; median paired difference "
            f"{statistics.median(diffs):+.2f} us ({100 * statistics.median(diffs) / median_off:+.1f}%), "
            f"quartiles {quartiles[0]:+.2f} .. {quartiles[2]:+.2f}; mean {mean_diff:+.2f} us "
            f"({100 * mean_diff / statistics.mean(offs):+.1f}%); the driver's CPU per call "
            f"{statistics.median(cpu_diffs):+.2f} us (median), {statistics.mean(cpu_diffs):+.2f} (mean); the other processes' "
            f"(node, head, workers) {statistics.median(rest_diffs):+.2f} (median), "
            f"{statistics.mean(rest_diffs):+.2f} (mean)"
        )
        for pid, pid_diffs in sorted(by_process.items()):
            print(f"    {name(pid)}: {statistics.mean(pid_diffs):+.2f} us per call (mean)")
    ray.shutdown()


if __name__ == "__main__":
    main()
