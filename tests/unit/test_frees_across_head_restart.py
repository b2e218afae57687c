"""An owner's free must reach every copy even when the head restarts around it (found by the
chaos test: pulled copies left in an arena for good). A node sends the frees of the last
moments again after its ResumeNode (the old head may have died with them unread), and a
resuming head keeps the frees it hears before every node is back, so the copies those nodes
report are freed rather than listed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.unit.test_head_restart_recovery import FakeEndpoint
from zray._config import config
from zray._private.head import store as H
from zray._private.head.service import HeadService
from zray._private.head.tables import HeadTables
from zray._private.node import head_resume
from zray._private.wire import protocol as P

A, B = b"a" * 28, b"b" * 28
X, Y = b"x" * 28, b"y" * 28


def _register(head, node_id, address):
    head.on_RegisterNode(
        b"id-" + node_id[:4],
        P.RegisterNode(node_id, address, "127.0.0.1", "h", {"CPU": 1.0}, 1, False, -1),
        1,
    )


def _resume(head, node_id, address, objects):
    head.on_ResumeNode(
        b"id-" + node_id[:4],
        P.ResumeNode(node_id, address, "127.0.0.1", "h", {"CPU": 1.0}, 1, False, [], [], objects),
        2,
    )


@pytest.fixture
def restarted_head(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "head_reconnect_timeout_s", 3600.0)
    store = H.SqliteStore(str(tmp_path / "state.sqlite3"))
    old = HeadService(FakeEndpoint(), 3600.0, tables=HeadTables(store))
    _register(old, A, "ipc://a")
    _register(old, B, "ipc://b")
    yield HeadService(FakeEndpoint(), 3600.0, tables=HeadTables(store))  # on the old one's state
    store.close()


def test_a_copy_freed_before_its_node_came_back_is_freed_not_listed(restarted_head):
    head = restarted_head
    assert head.awaited(A) and head.awaited(B)
    _resume(head, A, "ipc://a", [])
    head.on_RemoveObjectLocations(b"id-aaaa", P.RemoveObjectLocations(A, [X], True), 0)
    _resume(head, B, "ipc://b", [[X, 10], [Y, 10]])
    assert ("ipc://b", P.FreeObjects([X], False), 0) in head.endpoint.sent
    assert head.directory.lookup(X) == () and head.directory.lookup(Y) == (B,)
    assert head._freed_ids == set()  # every node back: nothing more to remember


class _Node:
    """What head_resume.resume() reads of a node daemon."""

    def __init__(self):
        self.sent = []
        self.node_id, self.head_address, self.resources, self.store_capacity = A, "ipc://h", {}, 1
        self.opts = SimpleNamespace(node_ip="127.0.0.1")
        self.endpoint = SimpleNamespace(peers={}, address="ipc://a", send=self._send)
        self.requests = SimpleNamespace(
            send=lambda address, msg, callback: self._send(address, msg)
        )
        self.clients, self.scheduler = {}, SimpleNamespace(leases={}, bundles={})
        self.store = SimpleNamespace(objects={})

    def _send(self, address, msg):
        self.sent.append(msg)
        return len(self.sent)


def test_a_node_sends_its_recent_frees_again_after_its_resume():
    node = _Node()
    head_resume.note_freed(node, [X])
    head_resume.note_freed(node, [Y])
    head_resume.resume(node, SimpleNamespace())
    assert [type(m) for m in node.sent] == [P.ResumeNode, P.RemoveObjectLocations]
    assert node.sent[1] == P.RemoveObjectLocations(A, [X, Y], True)


def test_frees_of_objects_their_owner_makes_again_are_not_sent_again():
    """Sent again, a free the old head had carried out would free the copy recomputed since
    under the same id (lineage reconstruction)."""
    node = _Node()
    head_resume.note_freed(node, [X, Y])
    head_resume.forget_freed(node, [X])
    head_resume.resume(node, SimpleNamespace())
    assert node.sent[1] == P.RemoveObjectLocations(A, [Y], True)


def test_a_pulled_copy_registered_after_its_owner_freed_it_is_freed(tmp_path):
    """The owner's free (owner, its node, head) overtook the registration of a copy another
    node pulled (batched with its seals): the head frees the copy instead of listing it."""
    store = H.SqliteStore(str(tmp_path / "state.sqlite3"))
    try:
        head = HeadService(FakeEndpoint(), 3600.0, tables=HeadTables(store))
        _register(head, A, "ipc://a")
        _register(head, B, "ipc://b")
        head.on_AddObjectLocations(b"id-aaaa", P.AddObjectLocations(A, [X], [10]), 0)
        head.on_RemoveObjectLocations(b"id-aaaa", P.RemoveObjectLocations(A, [X], True), 0)
        head.on_AddCopyLocations(b"id-bbbb", P.AddCopyLocations(B, [X, Y], [10, 10]), 0)
        assert ("ipc://b", P.FreeObjects([X], False), 0) in head.endpoint.sent
        assert head.directory.lookup(X) == () and head.directory.lookup(Y) == (B,)
        # A primary copy of X made again later (a recomputation) is listed as any other.
        head.on_AddObjectLocations(b"id-aaaa", P.AddObjectLocations(A, [X], [10]), 0)
        assert head.directory.lookup(X) == (A,)
    finally:
        store.close()
