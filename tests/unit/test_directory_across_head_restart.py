"""A restarted head rebuilds its object directory from the nodes as they come back: until every
awaited node is back, an object whose known copies died with a node is not lost yet (a node
still awaited may hold one, e.g. a put's primary copy on the driver's node); it is declared
lost only once every node is back or dead and none reported a copy."""

from __future__ import annotations

from tests.unit.test_frees_across_head_restart import A, B, X, _resume
from tests.unit.test_frees_across_head_restart import restarted_head  # noqa: F401 (fixture)
from zray._private.wire import protocol as P


def _answers(head, object_id):
    return [m for _, m, _ in head.endpoint.sent if getattr(m, "object_id", None) == object_id]


def test_a_copy_on_a_node_still_awaited_keeps_an_object_from_being_lost(restarted_head):  # noqa: F811
    head = restarted_head
    _resume(head, B, "ipc://b", [[X, 10]])  # a copy B pulled; the primary is on A
    head.on_SubscribeObjectLocation(b"driver", P.SubscribeObjectLocation(X, A), 7)
    assert _answers(head, X) == [P.ObjectLocation(X, [B], 10)]
    head.mark_dead(B, "killed just after it came back")
    head.on_SubscribeObjectLocation(b"driver", P.SubscribeObjectLocation(X, A), 8)
    assert _answers(head, X)[1:] == []  # waits for A, not "lost"
    _resume(head, A, "ipc://a", [[X, 10]])
    assert _answers(head, X)[1:] == [P.ObjectLocation(X, [A], 10)]


def test_an_object_no_node_reported_is_lost_once_the_awaited_nodes_are_settled(restarted_head):  # noqa: F811
    head = restarted_head
    _resume(head, B, "ipc://b", [[X, 10]])
    head.mark_dead(B, "killed just after it came back")
    head.on_SubscribeObjectLocation(b"driver", P.SubscribeObjectLocation(X, b""), 8)
    assert _answers(head, X) == []
    _resume(head, A, "ipc://a", [])  # the last awaited node: X had no other copy
    assert _answers(head, X) == [P.ObjectLocation(X, [], 0)]
    head.on_SubscribeObjectLocation(b"driver", P.SubscribeObjectLocation(X, b""), 9)
    assert _answers(head, X)[1:] == [P.ObjectLocation(X, [], 0)]
