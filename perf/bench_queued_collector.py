"""What the garbage collector costs a driver with many tasks queued at once (zray alone).

    python perf/bench_queued_collector.py 1000000        # submit, then drain, on 2 CPUs
    python perf/bench_queued_collector.py 1000000 0      # a cluster with no CPUs: submit only

Prints the submission rate, the drain's time, the collector's time in each (from
gc.callbacks, each full collection as it ends) and the tracked objects a queued task leaves.
"""

from __future__ import annotations

import gc
import sys
import time

import zray as ray


class Collector:
    def __init__(self):
        self.seconds, self.collections, self.full, self._start = 0.0, 0, 0, 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
            return
        took = time.perf_counter() - self._start
        self.seconds += took
        self.collections += 1
        if info["generation"] == 2:
            self.full += 1
            print(f"  full collection {took * 1000:.0f} ms", flush=True)

    def take(self) -> str:
        said = f"collector {self.seconds:.2f} s in {self.collections} ({self.full} full)"
        self.seconds, self.collections, self.full = 0.0, 0, 0
        return said


def main(count: int, cpus: int) -> None:
    ray.init(num_cpus=cpus, include_dashboard=False)

    @ray.remote
    def tiny():
        return None

    if cpus:
        ray.get(tiny.remote())  # a worker up first
    collector = Collector()
    before = len(gc.get_objects())
    start = time.perf_counter()
    refs = [tiny.remote() for _ in range(count)]
    took = time.perf_counter() - start
    print(f"submit {count / took:,.0f}/s; {collector.take()}")
    print(f"tracked objects per queued task {(len(gc.get_objects()) - before) / count:.2f}")
    if cpus:
        start = time.perf_counter()
        ray.get(refs)
        print(f"drain {time.perf_counter() - start:.1f} s; {collector.take()}")
    ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2)
