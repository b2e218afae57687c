"""The `ray.util` toolbox, zray against Ray 2.60.0 in one run (a single embedded node, 2 CPUs):

* `ActorPool(2 actors).map` over 10,000 small items (items/s, median of 3);
* `ray.util.multiprocessing.Pool(2).map` over 10,000 small items, default chunking
  (items/s, median of 3), and with `chunksize=1` (every item its own call).

    bash perf/setup_ray.sh          # once: Ray 2.60.0 in its own venv
    python perf/bench_util.py       # prints a Markdown table
"""

from __future__ import annotations

import statistics
import time

import side_by_side

ITEMS = 10_000


def measure(framework: str) -> dict:
    if framework == "zray":
        import zray as ray
        from zray.util import ActorPool
        from zray.util.multiprocessing import Pool
    else:
        import ray
        from ray.util import ActorPool
        from ray.util.multiprocessing import Pool
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:

        @ray.remote
        class Doubler:
            def double(self, x):
                return 2 * x

        pool = ActorPool([Doubler.remote() for _ in range(2)])
        list(pool.map(lambda actor, x: actor.double.remote(x), range(100)))  # warm
        actor_rates = []
        for _ in range(3):
            start = time.perf_counter()
            out = list(pool.map(lambda actor, x: actor.double.remote(x), range(ITEMS)))
            actor_rates.append(len(out) / (time.perf_counter() - start))
        pool_rates, single_rates = [], []
        with Pool(2) as workers:
            workers.map(abs, range(100))  # warm
            for _ in range(3):
                start = time.perf_counter()
                out = workers.map(abs, range(-ITEMS, 0))
                pool_rates.append(len(out) / (time.perf_counter() - start))
            for _ in range(3):
                start = time.perf_counter()
                out = workers.map(abs, range(-ITEMS, 0), chunksize=1)
                single_rates.append(len(out) / (time.perf_counter() - start))
        return {
            "actor_pool_map": statistics.median(actor_rates),
            "pool_map": statistics.median(pool_rates),
            "pool_map_chunk_1": statistics.median(single_rates),
        }
    finally:
        ray.shutdown()


if __name__ == "__main__":
    side_by_side.main(
        __file__,
        measure,
        "ray.util, one node, 2 CPUs",
        [
            ("actor_pool_map", "ActorPool(2).map, 10,000 small items (items/s)", False),
            ("pool_map", "multiprocessing Pool(2).map, 10,000 items (items/s)", False),
            ("pool_map_chunk_1", "Pool(2).map, chunksize=1 (items/s)", False),
        ],
        digits=0,
    )
