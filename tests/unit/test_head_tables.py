"""The head's write-through records (head_tables.py), against a real SQLite store."""

from __future__ import annotations

import msgpack
import pytest

from zray._private.head import actor_manager as A
from zray._private.head import store as H
from zray._private.head.tables import HeadTables


@pytest.fixture
def tables(tmp_path):
    tables = HeadTables(H.SqliteStore(str(tmp_path / H.SQLITE_FILE)))
    yield tables
    tables.close(clean=False)


def spec(name=""):
    return {"name": name, "namespace": "ns", "resources": {"CPU": 1}, "max_restarts": 0}


def test_actor_records_follow_the_state_and_unchanged_ones_are_not_rewritten(tables):
    manager = A.ActorManager()
    manager.create(b"a1", spec("x"))
    tables.actor_created(manager, manager.actors[b"a1"], [b"arg frame"])
    assert tables.store.get("actor_args", b"a1") == msgpack.packb([b"arg frame"])
    assert tables.store.get("named_actors", b"ns\0x") == b"a1"
    commits = tables.commits
    tables.actors(manager, [b"a1"])  # nothing changed
    assert tables.commits == commits
    manager.lease_granted(b"a1", 7, b"w1", "ipc://worker")
    manager.started(b"a1", True)
    tables.actors(manager, [b"a1"])
    record = msgpack.unpackb(tables.store.get("actors", b"a1"))
    assert (record["state"], record["lease_id"], record["address"]) == (A.ALIVE, 7, "ipc://worker")
    assert tables.commits == commits + 1


def test_a_dead_actors_name_is_given_up_and_not_taken_from_its_successor(tables):
    manager = A.ActorManager()
    manager.create(b"a1", spec("x"))
    tables.actor_created(manager, manager.actors[b"a1"], [])
    manager.kill(b"a1", True, "killed")
    tables.actors(manager, [b"a1"])
    assert tables.store.get("named_actors", b"ns\0x") is None
    assert msgpack.unpackb(tables.store.get("actors", b"a1"))["state"] == A.DEAD
    manager.create(b"a2", spec("x"))
    tables.actor_created(manager, manager.actors[b"a2"], [])
    # The dead one written again (a head that lost its cache of what it wrote): the name
    # stays with the live actor.
    HeadTables(tables.store).actors(manager, [b"a1"])
    assert tables.store.get("named_actors", b"ns\0x") == b"a2"


def test_a_failed_write_is_retried_by_the_next_change(tables, monkeypatch):
    manager = A.ActorManager()
    manager.create(b"a1", spec())
    tables.actor_created(manager, manager.actors[b"a1"], [])
    manager.kill(b"a1", True, "killed")

    def fail(ops):
        raise H.StoreError("disk full")

    monkeypatch.setattr(tables.store, "_write", fail)
    with pytest.raises(H.StoreError):
        tables.actors(manager, [b"a1"])
    monkeypatch.undo()
    tables.actors(manager, [b"a1"])  # same record as the failed one: written now
    assert msgpack.unpackb(tables.store.get("actors", b"a1"))["state"] == A.DEAD


def test_switched_off_tables_write_nothing_and_say_so():
    tables = HeadTables(None)
    manager = A.ActorManager()
    manager.create(b"a1", spec("x"))
    tables.actor_created(manager, manager.actors[b"a1"], [])
    tables.job(b"j", {"alive": True})
    tables.kv("ns", b"k", b"v")
    assert tables.stats() == {"store": "off", "commits": 0, "commit_s": 0.0}
    tables.close(clean=True)


def test_clean_close_clears_the_tables_and_unclean_keeps_them(tmp_path):
    path = str(tmp_path / "state.db")
    kept = HeadTables(H.SqliteStore(path))
    kept.kv("ns", b"k", b"v")
    kept.close(clean=False)
    with H.SqliteStore(path) as store:
        assert store.get("kv", b"ns\0k") == b"v"
    cleared = HeadTables(H.SqliteStore(path))
    cleared.close(clean=True)
    with H.SqliteStore(path) as store:
        assert store.empty()


def test_clear_is_a_commit_of_its_own(tmp_path):
    """A node clears the tables at the start of its shutdown and closes the store at its end:
    a SIGKILL between the two must still find them cleared."""
    path = str(tmp_path / "state.db")
    tables = HeadTables(H.SqliteStore(path))
    tables.kv("ns", b"k", b"v")
    tables.clear()
    import sqlite3

    with sqlite3.connect(path) as other:  # another process's view: what is committed
        assert other.execute("SELECT count(*) FROM head").fetchone()[0] == 0
    tables.close()
