"""A source node pins its copy for a puller from PullObject until PullDone: a puller that moved
on before the answer came (gave up, or tried another source) must still send PullDone, or the
copy stays pinned, and in the arena, for good."""

from __future__ import annotations

from types import SimpleNamespace

from zray._config import config
from zray._private.node.object_manager import ObjectManager
from zray._private.wire import protocol as P

OID, SOURCE = b"o" * 28, b"s" * 28


class _Node:
    def __init__(self):
        self.node_id = b"n" * 28
        self.asked: list = []  # (address, message, callback)
        self.sent: list = []  # (address, message)
        self.creds = SimpleNamespace(encrypt=False)
        self.opts = SimpleNamespace(node_ip="127.0.0.1")
        self.view = SimpleNamespace(
            nodes={SOURCE: SimpleNamespace(ip="127.0.0.1")},
            address_of=lambda node_id: "ipc://source" if node_id == SOURCE else None,
        )
        self.store = SimpleNamespace(objects={})
        self.requests = SimpleNamespace(send=lambda a, m, cb: self.asked.append((a, m, cb)))
        self.endpoint = SimpleNamespace(send=lambda a, m, *rest: self.sent.append((a, m)))
        self.head_address = "ipc://head"


def _found():
    return P.ObjectInfo(OID, True, 10, "ipc://owner", "/dev/shm/x", 0)


def test_an_answer_to_a_pull_given_up_meanwhile_is_released(monkeypatch):
    monkeypatch.setattr(config, "same_host_transfer", True)
    node = _Node()
    manager = ObjectManager(node)
    manager.want(OID, SOURCE)
    ((address, msg, answer),) = node.asked
    assert address == "ipc://source" and isinstance(msg, P.PullObject)
    manager.pulls.pop(OID)  # given up before the source answered
    answer(_found(), [])
    assert node.sent == [("ipc://source", P.PullDone(OID))]


def test_an_answer_from_a_source_left_behind_is_released(monkeypatch):
    monkeypatch.setattr(config, "same_host_transfer", True)
    node = _Node()
    manager = ObjectManager(node)
    manager.want(OID, SOURCE)
    (_, _, first_answer) = node.asked[0]
    manager._start(manager.pulls[OID], "ipc://other")  # timed out there: another source
    first_answer(_found(), [])
    assert node.sent == [("ipc://source", P.PullDone(OID))]
    assert manager.pulls[OID].source == "ipc://other"
