"""Spill and restore throughput, zray or Ray, on the same workload: put 3x a 500 MiB store's
worth of 50 MiB arrays (the store must spill), then get every one back (restores).

    python perf/bench_spill.py --framework zray
    ~/.zray-perf/ray-venv/bin/python perf/bench_spill.py --framework ray
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

STORE = 500 * 2**20
OBJECT = 50 * 2**20
COUNT = 30  # 1.5 GB through a 500 MB store


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
    total = COUNT * OBJECT
    spilled = total - STORE  # at least this much had to go to disk
    print(f"{args.framework}: put {total / 2**30:.2f} GiB through a {STORE // 2**20} MiB store in "
          f"{put_s:.2f} s ({total / put_s / 1e9:.2f} GB/s, >= {spilled / 2**30:.2f} GiB spilled); "
          f"get all back in {get_s:.2f} s ({total / get_s / 1e9:.2f} GB/s, restores included)")
    ray.shutdown()


if __name__ == "__main__":
    main()
