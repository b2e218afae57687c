"""The head's answer to list_named_actors: ActorManager.named, without sockets."""

from zray._private.head import actor_manager as A


def _manager():
    manager = A.ActorManager()
    manager.create(b"a" * 8, {"name": "first", "namespace": "ns1"})
    manager.create(b"b" * 8, {"name": "", "namespace": "ns1"})  # unnamed: never listed
    manager.create(b"c" * 8, {"name": "second", "namespace": "ns2"})
    manager.create(b"d" * 8, {"name": "third", "namespace": "ns1"})
    return manager


def test_named_lists_one_namespace_in_creation_order():
    assert _manager().named("ns1") == [("ns1", "first"), ("ns1", "third")]


def test_named_lists_every_namespace():
    assert _manager().named(None) == [("ns1", "first"), ("ns2", "second"), ("ns1", "third")]


def test_a_dead_actor_is_no_longer_listed_and_its_name_is_free_again():
    manager = _manager()
    manager.kill(b"a" * 8, no_restart=True, cause="killed")
    assert manager.named("ns1") == [("ns1", "third")]
    manager.create(b"e" * 8, {"name": "first", "namespace": "ns1"})
    assert manager.named("ns1") == [("ns1", "third"), ("ns1", "first")]


def test_a_restarting_actor_keeps_its_name():
    manager = A.ActorManager()
    manager.create(b"a" * 8, {"name": "kept", "namespace": "", "max_restarts": 1})
    manager.lease_granted(b"a" * 8, 7, b"w" * 8, "tcp://x")
    manager.started(b"a" * 8, ok=True)
    manager.worker_died(7, exit_code=1)
    assert manager.actors[b"a" * 8].state == A.RESTARTING
    assert manager.named("") == [("", "kept")]
