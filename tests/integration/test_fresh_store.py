"""The first large put into a cluster's never-used shared memory."""

import numpy as np


def test_a_large_put_into_a_fresh_store_is_intact(fresh):
    # The first large put writes never-used arena pages, which two threads populate first
    # (above 32 MiB): every byte of both halves must land, and a task must read them.
    ray = fresh
    ray.init(num_cpus=1)
    data = np.random.default_rng(7).integers(0, 2**63, size=(48 << 20) // 8, dtype=np.int64)

    @ray.remote
    def checksum(array):
        return int(array[: len(array) // 2].sum(dtype=np.uint64)), int(array[-1])

    ref = ray.put(data)
    assert np.array_equal(ray.get(ref, timeout=60), data)
    half = int(data[: len(data) // 2].sum(dtype=np.uint64))
    assert ray.get(checksum.remote(ref), timeout=60) == (half, int(data[-1]))
