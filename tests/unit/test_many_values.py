"""Many values at once: the owner's batched answer (one payload frame for all values), how a
borrower reads it (even a malformed one), and the pins of the views a get hands out
(core/borrowed_values.py, core/get_values.py)."""

from __future__ import annotations


import zmq

from zray._private.core.borrowed_values import BorrowedValues
from zray._private.core.get_values import GetValues
from zray._private.core.memory_store import (
    KIND_ERROR,
    KIND_FREED,
    KIND_INLINE,
    KIND_PLASMA,
    Entry,
    MemoryStore,
)
from zray._private.wire import protocol as P

OWNER = "tcp://127.0.0.1:1"


class _Refs:
    def __init__(self, owned=()):
        self.owned = set(owned)

    def owns(self, object_id):
        return object_id in self.owned

    def contents(self, object_id):
        return []

    def receive_contained(self, object_id, contained):
        return []


class _Endpoint:
    def __init__(self):
        self.peers = {}
        self.replies = []

    def reply(self, identity, msg, seq, payload=()):
        self.replies.append((msg, list(payload)))


class _Requests:
    def __init__(self):
        self.sent = []

    def send(self, address, msg, callback):
        self.sent.append(msg)


class _Core(BorrowedValues):
    def __init__(self, owned=()):
        self.memory_store = MemoryStore()
        self.refs = _Refs(owned)
        self.endpoint = _Endpoint()
        self.requests = _Requests()
        self._init_borrowed_values()

    def apply_released(self, released):
        pass


def _frame(data: bytes):
    """What a borrower's I/O thread holds for a received frame."""
    return zmq.Frame(data)


def test_an_answer_for_many_values_is_one_payload_frame():
    owner = _Core(owned=[b"pending"])
    owner.memory_store.put(b"one", Entry(KIND_INLINE, [b"meta-1"], b"", 6))
    owner.memory_store.put(b"two", Entry(KIND_INLINE, [b"meta-2", memoryview(b"buf")], b"", 9))
    owner.memory_store.put(b"arena", Entry(KIND_PLASMA, (), b"node", 1 << 20))
    owner.memory_store.put(b"err", Entry(KIND_ERROR, [b"boom"], b"", 4))
    ids = [b"one", b"two", b"arena", b"err", b"pending", b"gone"]
    owner.on_get_object_statuses(b"peer", P.GetObjectStatuses(ids), 7, [])
    [(reply, payload)] = owner.endpoint.replies
    assert payload == [b"meta-1meta-2bufboom"]  # one frame, however many values
    sizes = {status[0]: status[4] for status in reply.statuses}
    assert sizes == {b"one": [6], b"two": [6, 3], b"arena": [], b"err": [4], b"gone": []}
    assert [s[1] for s in reply.statuses if s[0] == b"gone"] == [KIND_FREED]
    assert reply.pending == [b"pending"]


def test_a_borrower_reads_each_value_out_of_the_one_frame():
    owner = _Core(owned=[b"pending"])
    owner.memory_store.put(b"one", Entry(KIND_INLINE, [b"meta-1"], b"", 6))
    owner.memory_store.put(b"two", Entry(KIND_INLINE, [b"meta-2", b"buf"], b"", 9))
    owner.memory_store.put(b"arena", Entry(KIND_PLASMA, (), b"node", 1 << 20))
    ids = [b"one", b"two", b"arena", b"pending"]
    owner.on_get_object_statuses(b"peer", P.GetObjectStatuses(ids), 7, [])
    [(reply, payload)] = owner.endpoint.replies

    borrower = _Core()
    borrower._owner_requests.update({oid: OWNER for oid in ids})
    borrower._on_object_statuses(OWNER, ids, reply, [_frame(f) for f in payload])
    store = borrower.memory_store
    assert store.get(b"one").frames == [b"meta-1"]
    assert store.get(b"two").frames == [b"meta-2", b"buf"]
    # Own bytes, not views of the shared frame (which would keep every value alive).
    assert all(type(f) is bytes for f in store.get(b"two").frames)
    assert store.get(b"arena").kind == KIND_PLASMA and store.get(b"arena").node_id == b"node"
    assert borrower.requests.sent == [P.GetObjectStatus(b"pending")]
    assert set(borrower._owner_requests) == {b"pending"}


def test_a_malformed_answer_is_asked_again_value_by_value():
    borrower = _Core()
    ids = [b"one", b"two", b"three"]
    borrower._owner_requests.update({oid: OWNER for oid in ids})
    statuses = [
        [b"one", KIND_INLINE, b"", 3, [3], []],
        [b"two", KIND_INLINE, b"", 3, [999], []],  # runs past the payload
        [b"three", KIND_INLINE, b"", 3, "x", []],
    ]
    borrower._on_object_statuses(OWNER, ids, P.ObjectStatuses(statuses, []), [_frame(b"abcdef")])
    assert borrower.memory_store.get(b"one").frames == [b"abc"]
    assert borrower.requests.sent == [P.GetObjectStatus(b"two"), P.GetObjectStatus(b"three")]


class _Pinner(GetValues):
    def __init__(self):
        self.arena = bytearray(4096)
        self._live_views = {}
        self._mapped_at = {}
        self._pin_releases = []
        self.doze_wake = None


def test_a_dead_view_is_forgotten_and_unpinned_once_but_a_newer_one_is_kept():
    core = _Pinner()
    old = core._pin(b"obj", 0, 100)
    assert bytes(core._live_views[b"obj"]()) == bytes(100)
    newer = core._pin(b"obj", 0, 100)  # a later get pinned it again while `old` lived
    del old
    assert core._pin_releases == [b"obj"]
    assert core._live_views[b"obj"]() is not None  # the newer view's entry stays
    del newer
    assert core._pin_releases == [b"obj", b"obj"]
    assert b"obj" not in core._live_views
