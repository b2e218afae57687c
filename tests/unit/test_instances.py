"""GPU instance assignment (zray/_private/node/instances.py) and the scheduler's use of it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from zray._private.node.instances import GpuInstances
from zray._private.common.resources import UNIT
from zray._private.node.scheduler import Grant, LocalScheduler


def test_whole_amounts_take_whole_gpus_lowest_first():
    gpus = GpuInstances(4 * UNIT)
    assert gpus.assign(2 * UNIT) == [0, 1]
    assert gpus.assign(UNIT) == [2]
    assert gpus.assign(2 * UNIT) is None
    gpus.release([0, 1], 2 * UNIT)
    assert gpus.assign(2 * UNIT) == [0, 1]


def test_fractions_pack_onto_the_fullest_gpu_that_fits():
    gpus = GpuInstances(2 * UNIT)
    assert gpus.assign(UNIT // 2) == [0]
    assert gpus.assign(UNIT // 4) == [0]
    assert gpus.assign(UNIT) == [1]  # GPU 1 stayed whole
    assert gpus.assign(UNIT // 2) is None  # a quarter left on GPU 0
    assert gpus.assign(UNIT // 4) == [0]


def test_spread_fractions_do_not_make_a_whole_gpu():
    gpus = GpuInstances(2 * UNIT)
    assert gpus.assign(UNIT // 2) == [0]
    assert gpus.assign(UNIT) == [1]
    gpus.release([1], UNIT)
    assert gpus.assign(UNIT // 2 + 1) == [1]
    assert gpus.assign(UNIT) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([UNIT // 4, UNIT // 2, UNIT, 2 * UNIT]), st.booleans()),
        max_size=30,
    )
)
def test_assigned_never_exceeds_a_gpu_and_release_restores(ops):
    gpus = GpuInstances(3 * UNIT)
    held = []
    for units, release in ops:
        if release and held:
            gpus.release(*held.pop())
        else:
            ids = gpus.assign(units)
            if ids is not None:
                held.append((ids, units))
        assert all(0 <= free <= UNIT for free in gpus.free)
        used = [0] * 3
        for ids, units in held:
            for i in ids:
                used[i] += min(units, UNIT)
        assert [UNIT - u for u in used] == gpus.free


def test_scheduler_grants_gpu_ids_and_takes_them_back():
    sched = LocalScheduler({"CPU": 2 * UNIT, "GPU": 2 * UNIT}, min_workers=2)
    sched.start()
    sched.worker_started(b"w1")
    sched.worker_started(b"w2")
    first = sched.request_lease(b"c", 1, {"CPU": UNIT, "GPU": UNIT})
    assert first == [Grant(b"c", 1, 1, first[0].worker_id, (0,))]
    second = sched.request_lease(b"c", 2, {"CPU": UNIT, "GPU": UNIT})
    assert second[0].gpu_ids == (1,)
    sched.return_lease(1)
    third = sched.request_lease(b"c", 3, {"CPU": UNIT, "GPU": UNIT})
    assert third[0].gpu_ids == (0,)
    sched.check_invariants()
