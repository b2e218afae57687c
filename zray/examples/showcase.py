"""A tour of zray on an embedded single-node cluster: `python -m zray.examples.showcase`.

It runs a small but real workload: a Monte Carlo estimate of pi fanned out over many tasks, a
map-reduce word count whose reducers consume the mappers' outputs, and a zero-copy analysis of a
large shared array that every task maps instead of copying; random walks in tasks report their
progress as bars the driver draws (`zray.experimental.tqdm_ray`).
"""

from __future__ import annotations

import collections
import math
import random
import time

import numpy as np

import zray as ray
from zray.experimental import tqdm_ray


@ray.remote
def sample_pi(n: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2))
    return int(((xy**2).sum(axis=1) <= 1.0).sum())


@ray.remote
def random_walk(walkers: int, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    positions = np.zeros(walkers)
    bar = tqdm_ray.tqdm(total=steps, desc=f"walk {seed}", flush_interval_s=0.1)
    for _ in range(steps):
        positions += rng.standard_normal(walkers)
        time.sleep(0.002)  # slow enough to watch the bars move
        bar.update(1)
    bar.close()  # sends the final state (as in Ray, iterating alone never closes a bar)
    return float(np.abs(positions).mean())


@ray.remote
def count_words(chunk: list[str]) -> dict:
    return dict(collections.Counter(word for line in chunk for word in line.split()))


@ray.remote
def merge_counts(*partials: dict) -> dict:
    total = collections.Counter()
    for partial in partials:
        total.update(partial)
    return dict(total)


@ray.remote
def column_stats(matrix: np.ndarray, start: int, stop: int) -> tuple:
    block = matrix[:, start:stop]  # a view into shared memory: no copy was made for this task
    return start, block.mean(axis=0), block.std(axis=0), bool(matrix.flags.writeable)


@ray.remote
def fragile(x: int) -> int:
    if x == 3:
        raise ValueError(f"cannot handle {x}")
    return x * x


def main():
    started = time.perf_counter()
    ray.init()
    print(
        f"zray started in {time.perf_counter() - started:.3f}s with {ray.cluster_resources()['CPU']:.0f} CPUs"
    )

    t = time.perf_counter()
    samples, tasks = 200_000, 64
    hits = ray.get([sample_pi.remote(samples, seed) for seed in range(tasks)])
    print(
        f"pi ~= {4 * sum(hits) / (samples * tasks):.5f} from {tasks} tasks "
        f"in {time.perf_counter() - t:.2f}s"
    )

    t = time.perf_counter()
    steps = 300
    distances = ray.get([random_walk.remote(10_000, steps, seed) for seed in range(4)])
    print(
        f"random walks: mean distance {sum(distances) / len(distances):.2f} after {steps} "
        f"steps (theory {math.sqrt(2 * steps / math.pi):.2f}) in {time.perf_counter() - t:.2f}s"
    )

    t = time.perf_counter()
    vocabulary = ["ray", "zray", "task", "actor", "object", "store", "node", "shared", "memory"]
    rng = random.Random(0)
    lines = [" ".join(rng.choice(vocabulary) for _ in range(12)) for _ in range(40_000)]
    chunks = [lines[i : i + 2_000] for i in range(0, len(lines), 2_000)]
    mapped = [count_words.remote(chunk) for chunk in chunks]
    reduced = [merge_counts.remote(*mapped[i : i + 5]) for i in range(0, len(mapped), 5)]
    counts = ray.get(merge_counts.remote(*reduced))
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    print(
        f"word count over {len(lines)} lines via {len(mapped)} mappers and {len(reduced)} "
        f"reducers in {time.perf_counter() - t:.2f}s: top {top}"
    )

    matrix = np.random.default_rng(1).standard_normal((4_096, 4_096))  # 128 MiB
    t = time.perf_counter()
    matrix_ref = ray.put(matrix)
    put_s = time.perf_counter() - t
    step = 512
    stats = ray.get([column_stats.remote(matrix_ref, s, s + step) for s in range(0, 4_096, step)])
    means = np.concatenate([mean for _, mean, _, _ in sorted(stats, key=lambda s: s[0])])
    assert np.allclose(means, matrix.mean(axis=0))
    assert not any(writeable for *_, writeable in stats)
    shared = ray.get(matrix_ref)
    print(
        f"put a {matrix.nbytes / 2**20:.0f} MiB array in {put_s * 1000:.0f} ms "
        f"({matrix.nbytes / put_s / 1e9:.1f} GB/s, into fresh pages); {len(stats)} tasks "
        f"read it zero-copy; "
        f"get returns a read-only view (writeable={shared.flags.writeable}) "
        f"in {time.perf_counter() - t:.2f}s total"
    )

    results = [fragile.remote(i) for i in range(5)]
    ready, _ = ray.wait(results, num_returns=5, timeout=10)
    for ref in ready:
        try:
            ray.get(ref)
        except ValueError as error:
            print(f"a task failed and the driver caught it as ValueError: {error.cause}")
    print(f"showcase finished in {time.perf_counter() - started:.2f}s")
    ray.shutdown()


if __name__ == "__main__":
    main()
