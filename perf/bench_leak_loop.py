"""Store use over long put -> task -> get loops, zray or Ray: does memory stay flat?

Three loops of N iterations each, sampling the object store's used bytes every N/10 steps:
  plain   ref = put(160 KB array); get(f.remote(ref))          (top-level argument)
  nested  ref = put(160 KB array); get(g.remote([ref]))        (ref nested in an argument)
  result  inner = get(h.remote())[0]; get(inner)               (ref created by a worker, returned
                                                                inside a list)

    python perf/bench_leak_loop.py --framework zray
    ~/.zray-perf/ray-venv/bin/python perf/bench_leak_loop.py --framework ray
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def store_used_zray() -> int:
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    reply, _ = core.requests.call(core.node_address, P.GetNodeStats(0), 10)
    return reply.stats["store"]["used"]


def store_used_ray() -> int:
    """Ray's plasma usage as its `ray memory --stats-only` reports it (needs grpcio, which
    perf/setup_ray.sh installs)."""
    import re

    from ray._private.internal_api import memory_summary

    found = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(stats_only=True))
    return int(found.group(1)) * 2**20 if found else -1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=["zray", "ray"], default="zray")
    parser.add_argument("--iterations", type=int, default=10_000)
    args = parser.parse_args()
    if args.framework == "zray":
        import zray as ray
    else:
        import ray
    ray.init(num_cpus=2, include_dashboard=False)

    @ray.remote
    def double(a):
        return a * 2

    @ray.remote
    def total(refs):
        return float(ray.get(refs[0]).sum())

    @ray.remote
    def make(i):
        return [ray.put(np.full(20_000, i, dtype=np.float64))]

    def plain(i):
        ref = ray.put(np.full(20_000, i, dtype=np.float64))
        assert ray.get(double.remote(ref))[0] == 2 * i

    def nested(i):
        ref = ray.put(np.full(20_000, i, dtype=np.float64))
        assert ray.get(total.remote([ref])) == 20_000 * i

    def result(i):
        inner = ray.get(make.remote(i))[0]
        assert ray.get(inner)[0] == i

    used = store_used_zray if args.framework == "zray" else store_used_ray
    n = args.iterations
    for name, step in (("plain", plain), ("nested", nested), ("result", result)):
        gc.collect()
        samples = []
        start = time.perf_counter()
        for i in range(n):
            step(i)
            if i % (n // 10) == n // 10 - 1:
                samples.append(used())
        elapsed = time.perf_counter() - start
        time.sleep(1.0)
        gc.collect()
        time.sleep(1.0)
        print(
            f"{args.framework} {name:7s} {n / elapsed:8.0f} it/s  store used (MiB) every "
            f"{n // 10}: {' '.join(f'{s / 2**20:.1f}' for s in samples)}  "
            f"after: {used() / 2**20:.1f}",
            flush=True,
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
