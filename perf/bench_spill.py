"""Spill and restore throughput, zray or Ray, on the same workload, all refs held throughout:

1. put 30 arrays of 50 MiB (1.5 GiB) through a 500 MiB store: at least 1 GiB must be spilled;
2. get every one back in order and check it: restores (and the spills they force);
3. with the store still over its spilling threshold, put 1 GiB more as 1 MiB arrays: put
   throughput under memory pressure, where small objects test fusing into larger files.

    python perf/bench_spill.py --framework zray
    ~/.zray-perf/ray-venv/bin/python perf/bench_spill.py --framework ray

Spill files go to a directory on the root disk for both (Ray: /tmp/ray/session_*/..., zray: the
session dir under /tmp/zray-sessions). Throughputs are wall-clock bytes over seconds as the user sees them;
the framework's own spill/restore counters are printed after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

STORE = 500 * 2**20
OBJECT = 50 * 2**20
COUNT = 30  # 1.5 GiB through a 500 MiB store
SMALL = 2**20
SMALL_COUNT = 1024


def gbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:.2f} GB/s"


def internal_stats(framework: str, ray) -> str:
    if framework == "ray":
        try:
            from ray._private.internal_api import memory_summary

            lines = memory_summary(stats_only=True).splitlines()
        except ImportError as exc:  # the summary needs grpcio, which a minimal venv lacks
            return f"(Ray's spill counters unavailable: {exc})"
        return "\n".join(l.strip() for l in lines if "Spilled" in l or "Restored" in l)
    import zray._private.core.runtime as runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    stats = core.requests.call(core.node_address, P.GetNodeStats(0), 10)[0].stats["spill"]
    write_s, read_s = stats.get("write_us", 0) / 1e6, stats.get("read_us", 0) / 1e6
    return (
        f"Spilled {stats['bytes_spilled'] / 2**20:.0f} MiB in "
        f"{stats.get('files_written', 0)} files, {stats.get('objects_spilled', 0)} objects, "
        f"write thread {gbps(stats['bytes_spilled'], write_s) if write_s else '-'}\n"
        f"Restored {stats['bytes_restored'] / 2**20:.0f} MiB, "
        f"{stats.get('objects_restored', 0)} objects, "
        f"read thread {gbps(stats['bytes_restored'], read_s) if read_s else '-'}\n"
        f"Puts that waited for room: {stats['waited_for_room']}, threshold batches: "
        f"{stats['threshold_batches']}"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=("zray", "ray"), required=True)
    args = parser.parse_args()
    if args.framework == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        ray.init(num_cpus=2, object_store_memory=STORE, include_dashboard=False)
    else:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import zray as ray

        ray.init(num_cpus=2, object_store_memory=STORE)
    arrays = [np.full(OBJECT // 8, i, dtype=np.int64) for i in range(COUNT)]
    start = time.perf_counter()
    refs = [ray.put(a) for a in arrays]
    put_s = time.perf_counter() - start
    start = time.perf_counter()
    for i, ref in enumerate(refs):
        assert int(ray.get(ref)[-1]) == i
    get_s = time.perf_counter() - start
    small = [np.full(SMALL // 8, i, dtype=np.int64) for i in range(SMALL_COUNT)]
    start = time.perf_counter()
    small_refs = [ray.put(a) for a in small]
    small_s = time.perf_counter() - start
    for i in (0, SMALL_COUNT // 2, SMALL_COUNT - 1):
        assert int(ray.get(small_refs[i])[0]) == i
    total = COUNT * OBJECT
    print(
        f"{args.framework}: put {total / 2**30:.2f} GiB of {OBJECT // 2**20} MiB arrays through "
        f"a {STORE // 2**20} MiB store: {put_s:.2f} s, {gbps(total, put_s)}"
    )
    print(f"{args.framework}: get all back (restores): {get_s:.2f} s, {gbps(total, get_s)}")
    print(
        f"{args.framework}: put {SMALL_COUNT * SMALL / 2**30:.2f} GiB of 1 MiB arrays over the "
        f"threshold: {small_s:.2f} s, {gbps(SMALL_COUNT * SMALL, small_s)}"
    )
    print(internal_stats(args.framework, ray))
    del refs, small_refs
    ray.shutdown()


if __name__ == "__main__":
    main()
