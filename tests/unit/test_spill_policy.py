"""The spilling policy (spill.py) over a real object table and spill threads, on a small arena
file: no node, no sockets. Completions are delivered by polling the I/O pipe as the node does."""

from __future__ import annotations

import os
import select
import time

import pytest

from zray._fast import _allocator_py
from zray._private.node.object_table import LocalObjectStore
from zray._private.node.spill import Spiller

KIB = 1024
CAPACITY = 64 * KIB


@pytest.fixture
def env(tmp_path):
    arena = tmp_path / "arena"
    with open(arena, "wb") as f:
        f.truncate(CAPACITY)
    store = LocalObjectStore(_allocator_py.Allocator(CAPACITY, 4096))
    events = {"evicted": [], "restored": [], "lost": []}
    spiller = Spiller(
        store,
        str(arena),
        CAPACITY,
        str(tmp_path / "spill"),
        threshold=0.75,
        min_spilling_size=16 * KIB,
        wait_s=5.0,
        grace_s=0.0,
        on_evicted=events["evicted"].extend,
        on_restored=events["restored"].extend,
        on_lost=events["lost"].append,
    )
    yield store, spiller, events, arena
    spiller.close()


def put(store, arena, oid, size, primary=True, tag=None):
    offset = store.create(b"w", oid, size, "owner", primary=primary)
    with open(arena, "r+b") as f:
        f.seek(offset)
        f.write(bytes([tag if tag is not None else oid[-1]]) * size)
    store.seal(oid)
    return offset


def settle(spiller, timeout=5.0):
    """Delivers I/O completions until nothing is in flight."""
    deadline = time.monotonic() + timeout
    while (spiller.store.batches or spiller._restores_requested) and time.monotonic() < deadline:
        ready, _, _ = select.select([spiller.io.fd], [], [], 0.1)
        if ready:
            spiller.on_io_ready()
    assert not spiller.store.batches


def test_threshold_spills_lru_primaries_into_one_file(env):
    store, spiller, _, arena = env
    for i in range(5):
        put(store, arena, b"o%d" % i, 8 * KIB)  # 40 KiB: under 48 KiB
    spiller.spill_above_threshold()
    assert not store.batches
    put(store, arena, b"o5", 12 * KIB)  # 52 KiB: over
    spiller.spill_above_threshold()
    [batch] = store.batches.values()
    assert [e[0] for e in batch.entries] == [b"o0", b"o1"]  # 16 KiB, the minimum batch
    assert store.objects[b"o0"].offset >= 0  # readable until written
    settle(spiller)
    assert store.objects[b"o0"].spilled and store.objects[b"o1"].spilled
    assert os.listdir(spiller.directory) == ["00000001"]
    assert store.allocator.used == 36 * KIB


def test_secondary_copies_go_first_and_the_directory_hears(env):
    store, spiller, events, arena = env
    put(store, arena, b"s0", 16 * KIB, primary=False)
    put(store, arena, b"p0", 16 * KIB)
    put(store, arena, b"s1", 16 * KIB, primary=False)
    answers = []
    spiller.request_room(32 * KIB, lambda ok, why: answers.append(ok))
    assert answers == [True] and events["evicted"] == [b"s0", b"s1"]
    assert not store.batches and b"p0" in store.objects


def test_put_waits_for_the_spill_then_restore_brings_bytes_back(env):
    store, spiller, events, arena = env
    for i in range(4):
        put(store, arena, b"o%d" % i, 16 * KIB)  # full
    answers = []
    spiller.request_room(16 * KIB, lambda ok, why: answers.append(ok))
    assert answers == [] and store.batches  # waiting while o0 is written
    settle(spiller)
    assert answers == [True]
    put(store, arena, b"o4", 16 * KIB, tag=9)
    assert store.get(b"r", "h", [b"o0"], time.monotonic() + 5) is None
    spiller.restore(b"o0", exclude=[b"o0"])
    settle(spiller)
    [(waiter, [(offset, size)])] = events["restored"]
    with open(arena, "rb") as f:
        f.seek(offset)
        assert f.read(size) == bytes([b"o0"[-1]]) * size


def fill_with_pinned(store, arena, count=4):
    for i in range(count):
        put(store, arena, b"o%d" % i, 16 * KIB)
        store.get(b"r", "h", [b"o%d" % i], 0)


def test_full_of_pinned_objects_fails_after_the_grace_with_the_largest_listed(env):
    store, spiller, _, arena = env
    fill_with_pinned(store, arena)
    answers = []
    spiller.request_room(4 * KIB, lambda ok, why: answers.append((ok, why)), grace_s=0.2)
    spiller.expire(time.monotonic())
    assert answers == []  # readers let go of their views moments later, as a rule
    assert spiller.next_deadline() is not None  # the node wakes up to look again
    spiller.expire(time.monotonic() + 0.3)
    [(ok, why)] = answers
    assert not ok and "Largest objects" in why and "pinned by 1 reader" in why
    answers.clear()
    spiller.request_room(4 * KIB, lambda ok, why: answers.append((ok, why)))  # grace 0
    assert [ok for ok, _ in answers] == [False]


def test_a_release_within_the_grace_makes_room(env):
    store, spiller, _, arena = env
    fill_with_pinned(store, arena)
    answers = []
    spiller.request_room(16 * KIB, lambda ok, why: answers.append(ok), grace_s=60.0)
    spiller.retry()
    assert answers == []
    store.release(b"r", [b"o1"])
    spiller.retry()
    settle(spiller)  # o1 is written out, then its room is handed over
    assert answers == [True]


def test_a_restore_waits_for_room_instead_of_losing_its_object(env):
    """The object is on disk, not lost: a store full of pinned objects delays it only."""
    store, spiller, events, arena = env
    put(store, arena, b"s0", 16 * KIB)
    spiller.request_room(CAPACITY, lambda ok, why: None)  # writes s0 out: its room is freed
    settle(spiller)
    assert store.objects[b"s0"].spilled
    fill_with_pinned(store, arena)
    assert store.get(b"g", "h", [b"s0"], time.monotonic() + 5) is None
    spiller.restore(b"s0", exclude=[b"s0"])
    spiller.expire(time.monotonic() + 1)  # past any put's grace, within the restore's wait
    assert events["lost"] == [] and events["restored"] == []
    store.release(b"r", [b"o2"])
    spiller.retry()
    settle(spiller)
    [(waiter, [(offset, size)])] = events["restored"]
    assert waiter.client == b"g" and size == 16 * KIB and events["lost"] == []


def test_waiting_for_room_is_bounded(env):
    store, spiller, _, arena = env
    for i in range(4):
        put(store, arena, b"o%d" % i, 16 * KIB)
    answers = []
    spiller.request_room(16 * KIB, lambda ok, why: answers.append((ok, why)), wait_s=0.0)
    spiller.expire(time.monotonic() + 1)
    [(ok, why)] = answers
    assert not ok and "timed out" in why
    settle(spiller)  # the spill it started still completes


def test_a_failing_disk_keeps_objects_and_reports(env, tmp_path):
    store, spiller, _, arena = env
    with open(tmp_path / "spill", "w"):
        pass  # a file where the directory should be: every write fails
    for i in range(4):
        put(store, arena, b"o%d" % i, 16 * KIB)
    answers = []
    spiller.request_room(16 * KIB, lambda ok, why: answers.append((ok, why)))
    settle(spiller)
    [(ok, why)] = answers
    assert not ok and "Last spill error" in why
    assert all(not o.spilled for o in store.objects.values())


def test_freed_objects_delete_their_file(env):
    store, spiller, _, arena = env
    for i in range(4):
        put(store, arena, b"o%d" % i, 16 * KIB)
    spiller.request_room(16 * KIB, lambda ok, why: None)
    settle(spiller)
    assert os.listdir(spiller.directory)
    store.free(list(store.objects))
    spiller.delete_dead_files()
    assert os.listdir(spiller.directory) == []
