"""The head's placement of actors when a node it asked for a worker dies before answering:
the request would never be answered, and the actor would stay PENDING or RESTARTING for good
(found by the chaos test: a restarting actor asked of a node killed a moment later)."""

from __future__ import annotations

import pytest

from tests.unit.test_head_restart_recovery import FakeEndpoint
from zray._private.head import actor_manager as A
from zray._private.head import store as H
from zray._private.head.service import HeadService
from zray._private.head.tables import HeadTables
from zray._private.wire import protocol as P


@pytest.fixture
def head(tmp_path):
    store = H.SqliteStore(str(tmp_path / "state.sqlite3"))
    head = HeadService(FakeEndpoint(), 3600.0, tables=HeadTables(store))
    for name in (b"1", b"2"):
        head.on_RegisterNode(
            b"node" + name,
            P.RegisterNode(
                name * 28,
                f"ipc://node{name.decode()}",
                "127.0.0.1",
                "h",
                {"CPU": 4.0},
                1,
                False,
                -1,
            ),
            1,
        )
    head.on_RegisterJob(b"driver", P.RegisterJob(b"driver", "ns", 1, {}, "non_detached"), 2)
    yield head
    store.close()


def _lease_requests(head):
    return [
        (address, msg, seq)
        for address, msg, seq in head.endpoint.sent
        if type(msg) is P.RequestLease and seq in head.requests._pending
    ]


def test_an_actor_asked_of_a_node_that_died_is_placed_elsewhere(head):
    spec = {
        "namespace": "ns",
        "lifetime": "non_detached",
        "max_restarts": 0,
        "resources": {"CPU": 1.0},
        "owner_id": b"driver",
        "class_name": "C",
    }
    actor_id = b"a" * 16
    head.on_CreateActor(b"driver", P.CreateActor(actor_id, spec, 1, []), 3, [])
    ((asked, _, _),) = _lease_requests(head)
    dead = next(n for n in head.nodes.values() if n.address == asked)
    head.mark_dead(dead.node_id, "test")
    ((again, msg, seq),) = _lease_requests(head)
    assert again != asked
    head.requests.deliver(P.LeaseGranted(msg.request_id, 7, b"w", "ipc://w", b"", []), seq, ())
    assert head.actors.actors[actor_id].lease_id == 7
    assert head.actors.actors[actor_id].state == A.PENDING  # started next, on the live node
    assert head._actor_lease_requests == {}
