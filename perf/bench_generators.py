"""Ray generators, zray against Ray 2.60.0 in one run (a single embedded node, 2 CPUs):

* items/s of a stream of 10,000 small values (one task yields them, the driver gets each);
* GB/s of a stream of 100 values of 1 MiB (numpy arrays, through shared memory);
* first-item latency: from `f.remote()` to the first value in hand (median of 50).

    bash perf/setup_ray.sh                 # once: Ray 2.60.0 in its own venv
    python perf/bench_generators.py        # prints a Markdown table

Each framework runs in its own subprocess; Ray runs under the venv's python, never imported here.
"""

from __future__ import annotations

import statistics
import time

import side_by_side


def measure(framework: str) -> dict:
    import numpy as np

    if framework == "zray":
        import zray as ray
    else:
        import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:

        @ray.remote
        def small(n):
            for i in range(n):
                yield i

        @ray.remote
        def big(n):
            block = np.ones(2**20, dtype=np.uint8)
            for _ in range(n):
                yield block

        for ref in small.remote(100):  # warm a worker and the function
            ray.get(ref)
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            count = sum(1 for ref in small.remote(10_000) if ray.get(ref) is not None)
            rates.append(count / (time.perf_counter() - start))
        throughput = []
        for _ in range(3):
            start = time.perf_counter()
            total = sum(ray.get(ref).nbytes for ref in big.remote(100))
            throughput.append(total / (time.perf_counter() - start) / 1e9)
        first = []
        for _ in range(50):
            start = time.perf_counter()
            stream = small.remote(1)
            ray.get(next(stream))
            first.append((time.perf_counter() - start) * 1000)
            del stream
        return {
            "small_items_per_s": statistics.median(rates),
            "mib_items_gb_s": statistics.median(throughput),
            "first_item_ms": statistics.median(first),
        }
    finally:
        ray.shutdown()


if __name__ == "__main__":
    side_by_side.main(
        __file__,
        measure,
        "generators, one node",
        [
            ("small_items_per_s", "stream of 10,000 small items (items/s)", False),
            ("mib_items_gb_s", "stream of 100 x 1 MiB items (GB/s)", False),
            ("first_item_ms", "first item in hand (ms, median of 50)", True),
        ],
    )
