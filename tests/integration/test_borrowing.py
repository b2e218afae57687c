"""Distributed reference counting: refs handed to other processes keep their objects alive
exactly as long as someone holds them, and no longer."""

from __future__ import annotations

import gc
import time

import numpy as np

from tests.integration.test_objects import node_stats, wait_until

MB8 = 1_000_000  # float64 elements: 8 MB, well above the inline limit, so it lives in the arena


def store_objects() -> int:
    return node_stats()["store"]["objects"]


def settle(expected: int, timeout: float = 10.0) -> bool:
    gc.collect()
    return wait_until(lambda: store_objects() == expected, timeout)


def test_actor_keeps_a_borrowed_object_alive_after_the_owner_drops_it(ray):
    @ray.remote
    class Holder:
        def hold(self, refs):
            self.ref = refs[0]
            return True

        def read(self):
            return float(ray.get(self.ref).sum())

        def drop(self):
            self.ref = None
            return True

    holder = Holder.remote()
    ray.get(holder.hold.remote([ray.put(np.zeros(1))]))  # warm: the actor exists
    baseline = store_objects() if settle(store_objects()) else store_objects()
    ref = ray.put(np.ones(MB8))
    assert ray.get(holder.hold.remote([ref]))
    del ref
    gc.collect()
    time.sleep(0.5)  # the owner has applied the drop by now
    assert store_objects() == baseline + 1
    assert ray.get(holder.read.remote()) == MB8
    assert ray.get(holder.drop.remote())
    assert settle(baseline), (store_objects(), baseline)
    ray.kill(holder)


def test_refs_nested_in_task_arguments_are_freed_after_the_task(ray):
    @ray.remote
    def total(refs):
        return float(ray.get(refs[0]).sum())

    assert ray.get(total.remote([ray.put(np.ones(10))])) == 10
    settle(store_objects())
    baseline = store_objects()
    for _ in range(20):
        ref = ray.put(np.ones(MB8))
        assert ray.get(total.remote([ref])) == MB8
        del ref
    assert settle(baseline), (store_objects(), baseline)


def test_ref_returned_inside_a_result_outlives_the_worker_that_made_it(ray):
    @ray.remote
    def make():
        return [ray.put(np.arange(MB8, dtype=np.float64))]

    settle(store_objects())
    baseline = store_objects()
    inner = ray.get(make.remote())[0]
    gc.collect()
    time.sleep(0.5)  # the worker dropped its own ref long ago
    assert ray.get(inner)[12345] == 12345
    assert store_objects() == baseline + 1
    del inner
    assert settle(baseline), (store_objects(), baseline)


def test_object_containing_a_ref_keeps_it_and_its_readers_borrow_it(ray):
    @ray.remote
    def read_inner(outer):
        return float(ray.get(outer[0]).sum())

    settle(store_objects())
    baseline = store_objects()
    inner = ray.put(np.ones(MB8))
    outer = ray.put([inner])
    del inner
    gc.collect()
    time.sleep(0.3)
    assert ray.get(read_inner.remote(outer)) == MB8  # passed by value: the list reaches it
    assert float(ray.get(ray.get(outer)[0]).sum()) == MB8
    assert store_objects() == baseline + 1
    del outer
    assert settle(baseline), (store_objects(), baseline)


def test_a_borrower_can_hand_the_ref_on_to_a_third_process(ray):
    @ray.remote
    class Holder:
        def hold(self, refs):
            self.ref = refs[0]
            return True

        def read(self):
            return float(ray.get(self.ref).sum())

    @ray.remote
    def forward(refs, holder):
        return ray.get(holder.hold.remote(refs))  # this worker borrows, the actor borrows next

    holder = Holder.remote()
    assert ray.get(holder.hold.remote([ray.put(0)]))
    settle(store_objects())
    baseline = store_objects()
    ref = ray.put(np.ones(MB8))
    assert ray.get(forward.remote([ref], holder))
    del ref
    gc.collect()
    time.sleep(0.5)
    assert ray.get(holder.read.remote()) == MB8
    assert store_objects() == baseline + 1
    ray.kill(holder)


def test_an_object_borrowed_by_a_killed_actor_is_freed(ray):
    @ray.remote
    class Holder:
        def hold(self, refs):
            self.ref = refs[0]
            return True

    holder = Holder.remote()
    assert ray.get(holder.hold.remote([ray.put(0)]))
    settle(store_objects())
    baseline = store_objects()
    ref = ray.put(np.ones(MB8))
    assert ray.get(holder.hold.remote([ref]))
    del ref
    gc.collect()
    time.sleep(0.3)
    assert store_objects() == baseline + 1  # the actor still holds it
    ray.kill(holder)
    assert settle(baseline), (store_objects(), baseline)  # its registration died with it
