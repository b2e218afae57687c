"""MemoryStore.wait: wakes for its own objects, counts distinct ids, honours deadlines."""

from __future__ import annotations

import threading
import time

from zray._private.core.memory_store import KIND_INLINE, Entry, MemoryStore


def entry():
    return Entry(KIND_INLINE, [b""], b"", 1)


def test_returns_at_once_when_enough_are_present():
    store = MemoryStore()
    store.put(b"a", entry())
    assert store.wait([b"a", b"b"], 1, None) == [b"a"]


def test_wakes_when_the_last_needed_object_arrives():
    store = MemoryStore()
    ids = [b"%d" % i for i in range(1000)]
    blocked = []

    def produce():
        for oid in ids:
            store.put(oid, entry())

    timer = threading.Timer(0.05, produce)
    timer.start()
    started = time.monotonic()
    ready = store.wait(ids, len(ids), time.monotonic() + 10, on_block=blocked.append)
    timer.join()
    assert ready == ids and time.monotonic() - started < 5
    assert blocked == [True, False]
    assert store._waiters == []


def test_deadline_returns_what_is_there_and_unregisters():
    store = MemoryStore()
    store.put(b"a", entry())
    started = time.monotonic()
    assert store.wait([b"a", b"b", b"c"], 2, time.monotonic() + 0.1) == [b"a"]
    assert 0.08 < time.monotonic() - started < 2
    assert store._waiters == []
    store.put(b"b", entry())  # a late arrival touches no stale waiter


def test_duplicate_ids_count_once():
    store = MemoryStore()
    threading.Timer(0.05, lambda: store.put(b"a", entry())).start()
    assert store.wait([b"a", b"a"], 1, time.monotonic() + 5) == [b"a", b"a"]


def test_two_waits_on_one_object_both_wake():
    store = MemoryStore()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(store.wait([b"x"], 1, time.monotonic() + 5)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    store.put(b"x", entry())
    for t in threads:
        t.join(5)
    assert results == [[b"x"], [b"x"]]


def test_a_custom_block_is_woken_by_the_put_it_waits_for():
    store = MemoryStore()
    wakes, calls = [], []

    def block(waiter, timeout):
        calls.append(timeout)
        waiter.wake = lambda: wakes.append(True)
        # The producer runs "inside" the block, as a reader thread dispatching would.
        store.put(b"other", entry())
        assert not waiter.done and not wakes
        store.put(b"mine", entry())
        assert waiter.done and wakes == [True]

    assert store.wait([b"mine"], 1, time.monotonic() + 10, block=block) == [b"mine"]
    assert len(calls) == 1 and 0 < calls[0] <= 1.0
    assert store._waiters == [] and not store.has_other_waiters(0)


def test_a_waiter_set_before_or_while_it_sleeps_returns_at_once():
    from zray._private.core.memory_store import _Waiter

    early = _Waiter({b"a"}, 1)
    early.set()
    started = time.monotonic()
    early.sleep(5)
    assert early.done and time.monotonic() - started < 1

    late = _Waiter({b"a"}, 1)
    threading.Timer(0.05, late.set).start()
    started = time.monotonic()
    while not late.done and time.monotonic() - started < 5:
        late.sleep(5)
    assert late.done and time.monotonic() - started < 1

    never = _Waiter({b"a"}, 1)
    started = time.monotonic()
    never.sleep(0.05)
    never.sleep(0.05)  # a second sleep after a timeout waits again
    assert not never.done and time.monotonic() - started >= 0.1


def test_shared_memory_entries_are_counted_per_node():
    from zray._private.core.memory_store import KIND_INLINE, KIND_PLASMA, Entry, MemoryStore

    store = MemoryStore()
    store.put(b"a", Entry(KIND_PLASMA, (), b"n1", 10))
    store.put(b"b", Entry(KIND_PLASMA, (), b"n2", 10))
    store.put(b"c", Entry(KIND_INLINE, [b"x"]))
    assert store.plasma_per_node == {b"n1": 1, b"n2": 1}
    store.put(b"a", Entry(KIND_PLASMA, (), b"n2", 10))  # a copy moved: counted once, there
    assert store.plasma_per_node == {b"n2": 2}
    store.delete(b"a")
    store.delete(b"b")
    store.delete(b"c")
    assert store.plasma_per_node == {}
