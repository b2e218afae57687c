"""Pool starts a cluster of its own when zray is not initialized, as Ray's does."""


def test_pool_starts_a_local_cluster_of_its_size(fresh):
    from zray.util.multiprocessing import Pool

    assert not fresh.is_initialized()
    with Pool(processes=1) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
    assert fresh.cluster_resources()["CPU"] == 1


def test_ray_address_local_also_starts_one(fresh):
    from zray.util.multiprocessing import Pool

    with Pool(processes=1, ray_address="local") as pool:
        assert pool.apply(abs, (-3,)) == 3
    assert fresh.cluster_resources()["CPU"] == 1
