"""A recursive tree reduction: every internal task submits two children and blocks in get().

    python examples/tree_reduce.py --leaves 4096

prints the sum, the wall time, and the peak number of worker processes (and their peak total
memory) seen while it ran. Runs unchanged under Ray (`--ray`), for comparison.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

ZRAY_NAMES = ("zray._private.worker.zygote",)


def worker_processes(root_pid: int, names: tuple) -> list:
    import psutil

    found = []
    for proc in psutil.Process(root_pid).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(name in cmdline for name in names):
            found.append(proc)
    # zray's workers are forked from its zygote and share its command line: count the forks only.
    pids = {proc.pid for proc in found}
    return [proc for proc in found if names != ZRAY_NAMES or proc.ppid() in pids]


class PeakSampler:
    """Samples the worker processes every `interval_s` in a thread: peak count, peak RSS and
    PSS sums (PSS splits pages shared between forked workers fairly)."""

    def __init__(self, names: tuple, interval_s: float = 0.2):
        self.names, self.interval_s = names, interval_s
        self.peak_workers = self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        import psutil

        while not self._stop.wait(self.interval_s):
            rss = pss = 0
            procs = worker_processes(os.getpid(), self.names)
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            self.peak_workers = max(self.peak_workers, len(procs))
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=4096)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the final get waits before giving up"
    )
    parser.add_argument("--ray", action="store_true", help="run on Ray instead of zray")
    args = parser.parse_args()

    if args.ray:
        import ray

        names = ("default_worker.py", "ray::")
    else:
        import zray as ray

        names = ZRAY_NAMES

    @ray.remote
    def tree_sum(lo, hi):
        if hi - lo <= 1:
            return lo
        mid = (lo + hi) // 2
        return sum(ray.get([tree_sum.remote(lo, mid), tree_sum.remote(mid, hi)]))

    ray.init(num_cpus=args.num_cpus)
    try:
        with PeakSampler(names) as sampler:
            start = time.perf_counter()
            total = ray.get(tree_sum.remote(0, args.leaves), timeout=args.timeout)
            elapsed = time.perf_counter() - start
        expected = args.leaves * (args.leaves - 1) // 2
        print(
            f"leaves={args.leaves} sum={total} ({'ok' if total == expected else 'WRONG'}) "
            f"time={elapsed:.2f}s peak_workers={sampler.peak_workers} "
            f"peak_rss={sampler.peak_rss / 2**20:.0f}MiB "
            f"peak_pss={sampler.peak_pss / 2**20:.0f}MiB"
        )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
