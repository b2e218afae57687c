"""What tasks and actors hold, seen from inside: get_assigned_resources, GPU ids and
CUDA_VISIBLE_DEVICES, on a node that declares two GPUs (none need exist, as in Ray)."""

import os

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions


@pytest.fixture(scope="module")
def ray():
    import zray

    before_segments, before_sessions = zray_segments(), zray_sessions()
    zray.init(num_cpus=2, num_gpus=2)
    yield zray
    zray.shutdown()
    assert_no_leaks(before_segments, before_sessions)


def test_tasks_see_what_they_hold(ray):
    @ray.remote
    def inside():
        context = ray.get_runtime_context()
        return (
            context.get_assigned_resources(),
            ray.get_gpu_ids(),
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            context.get_accelerator_ids()["GPU"],
        )

    assert ray.get(inside.remote(), timeout=30) == ({"CPU": 1.0}, [], None, [])
    assert ray.get(inside.options(num_cpus=0, memory=100).remote(), timeout=30)[0] == {
        "memory": 100.0
    }
    resources, gpus, visible, accelerators = ray.get(
        inside.options(num_gpus=1).remote(), timeout=30
    )
    assert resources == {"CPU": 1.0, "GPU": 1.0}
    assert len(gpus) == 1 and gpus[0] in (0, 1)
    assert visible == str(gpus[0]) and accelerators == [str(gpus[0])]
    resources, gpus, visible, _ = ray.get(inside.options(num_gpus=2).remote(), timeout=30)
    assert resources == {"CPU": 1.0, "GPU": 2.0}
    assert sorted(gpus) == [0, 1] and sorted(visible.split(",")) == ["0", "1"]
    # A worker that ran a GPU task shows no GPU to the next task that asked for none.
    assert all(r[2] is None for r in ray.get([inside.remote() for _ in range(6)], timeout=30))


def test_fractional_gpus_share_one_gpu(ray):
    @ray.remote(num_gpus=0.5, num_cpus=0)
    class Half:
        def ids(self):
            return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

    first, second = Half.remote(), Half.remote()
    (ids1, visible1), (ids2, visible2) = ray.get(
        [first.ids.remote(), second.ids.remote()], timeout=30
    )
    assert ids1 == ids2 and len(ids1) == 1  # packed onto one GPU: the other stays whole
    assert visible1 == visible2 == str(ids1[0])

    @ray.remote(num_gpus=1)
    def whole():
        return ray.get_gpu_ids()

    assert ray.get(whole.remote(), timeout=30) == [1 - ids1[0]]
    for actor in (first, second):
        ray.kill(actor)


def test_actors_see_what_they_hold(ray):
    @ray.remote
    class Inside:
        def inside(self):
            context = ray.get_runtime_context()
            return (
                context.get_assigned_resources(),
                ray.get_gpu_ids(),
                os.environ.get("CUDA_VISIBLE_DEVICES"),
                context.get_accelerator_ids()["GPU"],
            )

    assert ray.get(Inside.remote().inside.remote(), timeout=30) == ({}, [], None, [])
    assert ray.get(Inside.options(num_cpus=1).remote().inside.remote(), timeout=30)[0] == {
        "CPU": 1.0
    }
    gpu_actor = Inside.options(num_gpus=1).remote()
    resources, gpus, visible, _ = ray.get(gpu_actor.inside.remote(), timeout=30)
    assert resources == {"CPU": 1.0, "GPU": 1.0}  # asking for a GPU holds a CPU too (Ray)
    assert len(gpus) == 1 and visible == str(gpus[0])
    ray.kill(gpu_actor)


def test_the_driver_holds_nothing(ray):
    assert ray.get_gpu_ids() == []
    with pytest.raises(AssertionError, match="only available when the process is a worker"):
        ray.get_runtime_context().get_assigned_resources()
