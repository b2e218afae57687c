"""The object store metric by location includes spilled bytes (Ray's `ray_object_store_memory`
with `Location=SPILLED`), on a cluster with a small store of its own."""

import time

import numpy as np

from tests.integration.test_metrics import scrape, value

MIB = 2**20


def test_spilled_bytes_are_reported_by_location(fresh):
    import zray._driver_init

    ray = fresh
    ray.init(num_cpus=1, object_store_memory=64 * MIB, _metrics_export_port=0)
    port = zray._driver_init._embedded.info["metrics_export_port"]
    refs = [ray.put(np.full(16 * MIB, i, dtype=np.uint8)) for i in range(8)]  # 128 MiB: spills

    deadline = time.monotonic() + 30
    while True:
        samples = scrape(port)
        spilled = value(samples, "ray_object_store_memory", Location="SPILLED")
        if spilled and spilled >= 4 * 16 * MIB or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert spilled is not None and spilled >= 4 * 16 * MIB, spilled
    in_memory = value(samples, "ray_object_store_memory", Location="MMAP_SHM")
    assert 0 < in_memory <= 64 * MIB
    assert int(ray.get(refs[0], timeout=60)[0]) == 0  # restored, still reported
    del refs
