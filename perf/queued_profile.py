"""Where a queued task's cost goes, zray only: N tiny tasks submitted at once, then drained.

    python perf/queued_profile.py 100000            # census + CPU per process
    python perf/queued_profile.py 100000 --sites    # also tracemalloc bytes per task by line

Prints, per queued task: the objects the garbage collector tracks (by type, counted right
after submission with `gc.get_objects()`), the bytes tracemalloc saw allocated (with
`--sites`, by source line; tracing slows submission, so its times are not comparable),
the CPU seconds of each runtime process (driver, node daemon, workers) during submission
and during the drain, and the driver's collector time per generation (gc.callbacks).
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import time
import tracemalloc

import psutil


class Collector:
    def __init__(self):
        self.by_generation = collections.Counter()
        self.counts = collections.Counter()
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.by_generation[info["generation"]] += time.perf_counter() - self._start
            self.counts[info["generation"]] += 1

    def take(self) -> dict:
        out = {f"gen{g}": f"{s:.2f} s ({self.counts[g]})" for g, s in self.by_generation.items()}
        self.by_generation.clear()
        self.counts.clear()
        return out


def cpu_seconds() -> dict:
    me = psutil.Process()
    out = {}
    for proc in [me] + me.children(recursive=True):
        try:
            times = proc.cpu_times()
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if proc.pid == me.pid:
            role = "driver"
        elif "include-dashboard" in cmdline or "include_dashboard" in cmdline:
            role = "daemon"  # the node daemon (and the head service in it)
        else:
            role = "worker"  # or the zygote, which forks them (idle here)
        out[f"{role} {proc.pid}"] = times.user + times.system
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--sites", action="store_true", help="tracemalloc bytes by line")
    args = parser.parse_args()
    import zray as ray

    ray.init(num_cpus=2, include_dashboard=False)

    @ray.remote
    def tiny():
        return None

    ray.get([tiny.remote() for _ in range(100)], timeout=60)
    gc.collect()
    before = collections.Counter(type(o).__name__ for o in gc.get_objects())
    if args.sites:
        tracemalloc.start(1)
        snapshot = tracemalloc.take_snapshot()
    collector = Collector()
    cpu0 = cpu_seconds()
    start = time.perf_counter()
    refs = [tiny.remote() for _ in range(args.count)]
    submit = time.perf_counter() - start
    cpu1, submit_gc = cpu_seconds(), collector.take()
    if args.sites:
        stats = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")
        tracemalloc.stop()
    census = collections.Counter(type(o).__name__ for o in gc.get_objects()) - before
    collector.take()  # the census's own collection work
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
    left = args.count - len(done)
    del done
    cpu2 = cpu_seconds()
    start = time.perf_counter()
    ray.get(refs, timeout=3600)
    drain = time.perf_counter() - start
    cpu3, drain_gc = cpu_seconds(), collector.take()
    n = args.count
    print(f"{n:,} tasks: submit {submit:.2f} s ({n / submit:,.0f}/s), drain {drain:.2f} s")
    print(f"  {left:,} left to drain when it began ({left / drain:,.0f}/s)")
    print(f"  tracked objects per queued task: {sum(census.values()) / n:.2f}")
    for name, count in census.most_common(6):
        print(f"    {name:24s} {count / n:.2f}")
    if args.sites:
        print(f"  bytes per queued task (tracemalloc): {sum(s.size_diff for s in stats) / n:.0f}")
        for stat in stats[:12]:
            print(f"    {stat.size_diff / n:7.1f} B  {stat.traceback[0]}")
    for label, a, b in (("submit", cpu0, cpu1), ("drain", cpu2, cpu3)):
        spent = {k: round(b[k] - a.get(k, 0.0), 2) for k in b}
        print(f"  CPU seconds during {label}: {json.dumps(spent)}")
    print(f"  driver's collector: submit {submit_gc}, drain {drain_gc}")
    ray.shutdown()


if __name__ == "__main__":
    main()
