"""One task with 3,000 returns of 200 KB arrays (each in the arena, past the answer's inline
budget), zray or Ray, three runs in one cluster: what creating a task's results costs.

    python perf/bench_many_returns.py zray
    ~/.zray-perf/ray-venv/bin/python perf/bench_many_returns.py ray
"""

from __future__ import annotations

import sys
import time

import numpy as np

COUNT = 3000


def main(framework: str) -> None:
    if framework == "ray":
        import ray
    else:
        import zray as ray
    ray.init(num_cpus=2, include_dashboard=False)

    @ray.remote(num_returns=COUNT)
    def many():
        return tuple(np.full(25_000, i) for i in range(COUNT))

    for _ in range(3):
        start = time.perf_counter()
        values = ray.get(many.remote())
        assert len(values) == COUNT and int(values[-1][0]) == COUNT - 1
        print(f"{framework}: {COUNT} returns of 200 KB in {time.perf_counter() - start:.3f} s")
        del values
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "zray")
