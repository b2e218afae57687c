"""The owner's get of an object it has just put maps it without asking its node: the put keeps
a pin (SealObject.pinned) that goes back with the dead views' at the next housekeeping, unless
a get takes it first (core_worker.store_value, get_values._revive)."""

from __future__ import annotations

import gc
import threading

import numpy as np

from tests.integration.test_objects import node_stats, wait_until

MB8 = 1_000_000  # float64 elements: 8 MB, in the arena


def _asked_the_node(core, monkeypatch) -> list:
    asked: list = []
    call = core.requests.call

    def recording(address, msg, *args, **kwargs):
        asked.append(type(msg).__name__)
        return call(address, msg, *args, **kwargs)

    monkeypatch.setattr(core.requests, "call", recording)
    return asked


def _housekeeping_held(core, monkeypatch):
    """A lock that, while this thread holds it, keeps the I/O thread's housekeeping from
    sending the put's pin back between the put and the get (it runs every 5 ms): the
    housekeeping skips the sending then, and sends it the next time."""
    held = threading.RLock()
    send = core._send_pin_releases

    def gated():
        if held.acquire(blocking=False):  # not waiting: the I/O thread answers our calls
            try:
                send()
            finally:
                held.release()

    monkeypatch.setattr(core, "_send_pin_releases", gated)
    return held


def test_a_get_right_after_a_put_maps_it_without_asking_the_node(ray, monkeypatch):
    import zray._private.core.runtime as runtime

    core = runtime.core
    gc.collect()
    objects_before = node_stats()["store"]["objects"]
    asked = _asked_the_node(core, monkeypatch)
    with _housekeeping_held(core, monkeypatch):
        array = np.arange(MB8, dtype=np.float64)
        ref = ray.put(array)
        value = ray.get(ref)
        assert node_stats()["store"]["pinned"] >= 1  # the put's pin, which the view now holds
    assert "CreateObject" in asked and "GetObjects" not in asked
    assert np.array_equal(value, array) and not value.flags.writeable  # a view of the arena
    # The view holds the pin now; once it and the ref are gone the object is freed.
    del value, ref
    gc.collect()
    assert wait_until(lambda: node_stats()["store"]["objects"] == objects_before)


def test_a_put_pin_not_taken_goes_back_and_a_later_get_asks_the_node(ray, monkeypatch):
    import zray._private.core.runtime as runtime

    core = runtime.core
    gc.collect()
    objects_before = node_stats()["store"]["objects"]
    ref = ray.put(np.ones(MB8))
    oid = ref.binary()
    assert wait_until(lambda: not core._pin_releases and oid not in core._mapped_at)
    asked = _asked_the_node(core, monkeypatch)
    value = ray.get(ref)
    assert asked == ["GetObjects"] and value.sum() == MB8
    del value
    gc.collect()
    assert wait_until(lambda: node_stats()["store"]["pinned"] == 0)
    del ref  # no pin left behind: the free is not held back
    gc.collect()
    assert wait_until(lambda: node_stats()["store"]["objects"] == objects_before)
