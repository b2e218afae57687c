"""The head store's contract, run on both implementations: SQLite and a real Redis."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid

import pytest

from tests.redis_server import PASSWORD, redis_server  # noqa: F401 (a fixture)
from zray._private.head import store as H


@pytest.fixture(params=["sqlite", "redis"])
def opener(request, tmp_path):
    """A function that opens the same store again each call (as a restarted head would)."""
    if request.param == "sqlite":
        path = str(tmp_path / "state" / H.SQLITE_FILE)
        yield lambda: H.SqliteStore(path)
        return
    server = request.getfixturevalue("redis_server")
    namespace = uuid.uuid4().hex
    yield lambda: H.RedisStore(server.address, PASSWORD, namespace=namespace)
    with H.RedisStore(server.address, PASSWORD, namespace=namespace) as store:
        store.clear()


@pytest.fixture
def store(opener):
    with opener() as store:
        yield store


def test_put_get_overwrite_delete(store):
    assert store.get("kv", b"a") is None
    store.put("kv", b"a", b"1")
    assert store.get("kv", b"a") == b"1"
    store.put("kv", b"a", b"2")
    assert store.get("kv", b"a") == b"2"
    store.delete("kv", b"a")
    assert store.get("kv", b"a") is None
    store.delete("kv", b"never there")  # deleting a missing key is no error


def test_tables_are_separate(store):
    for table in H.TABLES:
        store.put(table, b"k", table.encode())
    assert {table: store.get(table, b"k") for table in H.TABLES} == {
        table: table.encode() for table in H.TABLES
    }
    store.delete("jobs", b"k")
    assert store.get("jobs", b"k") is None and store.get("actors", b"k") == b"actors"


def test_binary_keys_and_values_of_any_size(store):
    values = {
        b"": b"empty key",
        b"\x00\xff": b"",
        b"big": os.urandom(2**20),
        bytes(range(256)): b"\x00" * 10,
    }
    for key, value in values.items():
        store.put("actors", key, value)
    assert dict(store.scan("actors")) == values
    store.put("actors", bytearray(b"ba"), memoryview(b"mv"))
    assert store.get("actors", b"ba") == b"mv"


def test_scan_is_ordered_and_a_snapshot(store):
    for key in (b"c", b"a", b"b"):
        store.put("nodes", key, key * 2)
    rows = store.scan("nodes")
    store.put("nodes", b"d", b"dd")  # after the call: not in its rows
    assert list(rows) == [(b"a", b"aa"), (b"b", b"bb"), (b"c", b"cc")]
    assert list(store.scan("jobs")) == []


def test_batch_applies_in_order_and_atomically(store):
    store.put("kv", b"gone", b"x")
    with store.batch() as batch:
        batch.put("kv", b"put-then-delete", b"1")
        batch.delete("kv", b"put-then-delete")
        batch.delete("kv", b"delete-then-put")
        batch.put("kv", b"delete-then-put", b"2")
        batch.delete("kv", b"gone")
        batch.put("jobs", b"j", b"3")
    assert dict(store.scan("kv")) == {b"delete-then-put": b"2"}
    assert store.get("jobs", b"j") == b"3"
    with pytest.raises(RuntimeError, match="boom"):
        with store.batch() as batch:
            batch.put("kv", b"half", b"1")
            batch.delete("kv", b"delete-then-put")
            raise RuntimeError("boom")
    assert dict(store.scan("kv")) == {b"delete-then-put": b"2"}


def test_bad_tables_and_types_are_refused(store):
    with pytest.raises(ValueError, match="unknown head table 'kvs'"):
        store.put("kvs", b"k", b"v")
    with pytest.raises(TypeError, match="key is bytes, not str"):
        store.put("kv", "k", b"v")
    with pytest.raises(TypeError, match="value is bytes, not int"):
        store.write([("kv", b"k", 1)])
    with pytest.raises(TypeError):
        with store.batch() as batch:
            batch.put("kv", b"ok", b"1")
            batch.put("kv", b"k", "not bytes")
    assert store.get("kv", b"ok") is None  # the refused batch wrote nothing


def test_reopened_store_has_every_write(opener):
    with opener() as store:
        store.put("kv", b"a", b"1")
        store.put("kv", b"b", b"2")
        store.delete("kv", b"a")
        with store.batch() as batch:
            batch.put("named_actors", b"ns\x00name", b"actor-id")
            batch.put("placement_groups", b"pg", b"spec")
    with opener() as again:
        loaded = again.load()
    assert loaded == {
        "jobs": {},
        "kv": {b"b": b"2"},
        "actors": {},
        "actor_args": {},
        "named_actors": {b"ns\x00name": b"actor-id"},
        "placement_groups": {b"pg": b"spec"},
        "nodes": {},
    }


def test_clear_empties_every_table(opener):
    with opener() as store:
        assert store.empty()
        for table in H.TABLES:
            store.put(table, b"k", b"v")
        assert not store.empty()
        store.clear()
        assert store.empty()
    with opener() as again:
        assert again.empty()


def test_closed_store_refuses_use(opener):
    store = opener()
    store.close()
    store.close()  # idempotent
    with pytest.raises(H.StoreError, match="closed"):
        store.put("kv", b"k", b"v")
    with pytest.raises(H.StoreError, match="closed"):
        store.get("kv", b"k")


def test_group_commit_answers_only_after_the_write(store):
    commit = H.GroupCommit(store)
    seen = []
    commit.put("kv", b"a", b"1")
    commit.put("actors", b"x", b"spec")
    commit.delete("kv", b"a")
    commit.after_flush(lambda: seen.append((store.get("actors", b"x"), commit.pending())))
    assert store.get("actors", b"x") is None and seen == []  # nothing written before flush
    commit.flush()
    assert seen == [(b"spec", 0)]
    assert store.get("kv", b"a") is None
    commit.flush()  # nothing pending: no write, no callback again
    assert seen == [(b"spec", 0)]


# ---------------------------------------------------------------- SQLite only


def test_sqlite_is_in_wal_mode_and_refuses_a_second_head(tmp_path):
    path = str(tmp_path / H.SQLITE_FILE)
    with H.SqliteStore(path) as store:
        store.put("kv", b"k", b"v")
        with pytest.raises(H.StoreError, match="in use by another head"):
            H.SqliteStore(path)
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    with H.SqliteStore(path) as store:  # the lock went with the first store
        assert store.get("kv", b"k") == b"v"


def test_sqlite_refuses_a_non_durable_setting(tmp_path):
    with pytest.raises(ValueError, match="OFF is not durable"):
        H.SqliteStore(str(tmp_path / "x"), synchronous="OFF")


def test_open_store_picks_sqlite_under_the_session_or_the_given_path(tmp_path):
    with H.open_store(session_dir=str(tmp_path)) as store:
        assert isinstance(store, H.SqliteStore)
        assert store.path == str(tmp_path / H.SQLITE_FILE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with H.open_store(session_dir=str(tmp_path), state_path=str(elsewhere)) as store:
        assert store.path == str(elsewhere / H.SQLITE_FILE)
    with H.open_store(state_path=str(tmp_path / "mine.db")) as store:
        assert store.path == str(tmp_path / "mine.db")
    with pytest.raises(ValueError):
        H.open_store()


# ---------------------------------------------------------------- Redis only


def test_open_store_picks_redis_when_given_an_address(redis_server):  # noqa: F811
    with H.open_store(
        session_dir="/nonexistent",
        redis_address=redis_server.address,
        redis_password=PASSWORD,
        namespace="pick",
    ) as store:
        assert isinstance(store, H.RedisStore)
        assert "Redis at" in store.description


def test_redis_namespaces_are_separate_clusters(redis_server):  # noqa: F811
    with (
        H.RedisStore(redis_server.address, PASSWORD, namespace="one") as one,
        H.RedisStore(redis_server.address, PASSWORD, namespace="two") as two,
    ):
        one.put("kv", b"k", b"1")
        assert two.get("kv", b"k") is None
        one.clear()
        assert one.get("kv", b"k") is None


def test_redis_errors_are_clear_and_bounded(redis_server):  # noqa: F811
    with pytest.raises(H.StoreError, match="cannot reach Redis.*(AUTH|password|auth)"):
        H.RedisStore(redis_server.address, "wrong password")
    with pytest.raises(H.StoreError, match="cannot reach Redis"):
        H.RedisStore(redis_server.address)  # no password
    with pytest.raises(H.StoreError, match="not HOST:PORT"):
        H.RedisStore("localhost")
    with pytest.raises(H.StoreError, match="not shards"):
        H.RedisStore(f"{redis_server.address},{redis_server.address}", PASSWORD)
    start = time.monotonic()
    with pytest.raises(H.StoreError, match="cannot reach Redis"):
        H.RedisStore("127.0.0.1:1", timeout_s=2)  # nothing listens on port 1
    assert time.monotonic() - start < 5


def test_redis_url_addresses(redis_server):  # noqa: F811
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    with H.RedisStore(url, PASSWORD, namespace="url") as store:
        store.put("jobs", b"j", b"1")
        assert store.get("jobs", b"j") == b"1"
        store.clear()


def test_sqlite_checkpoints_off_the_writers_path_and_the_wal_stays_bounded(tmp_path, monkeypatch):
    """Automatic checkpoints are off (their fsync would stall a head's write); the store's
    thread does them, so the WAL is reused from its start instead of growing."""
    monkeypatch.setattr(H, "CHECKPOINT_S", 0.1)
    path = str(tmp_path / H.SQLITE_FILE)
    value = b"v" * 4000
    with H.SqliteStore(path) as store:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for i in range(500):
            store.put("kv", b"%d" % i, value)
        first = os.path.getsize(path + "-wal")
        deadline = time.monotonic() + 10
        while True:  # bounded wait for a checkpoint that copied every frame
            time.sleep(0.2)
            store.put("kv", b"probe", b"")  # starts the WAL over once all was checkpointed
            if os.path.getsize(path + "-wal") == first or time.monotonic() > deadline:
                break
        for i in range(500):
            store.put("kv", b"%d" % i, value)
        assert os.path.getsize(path + "-wal") <= first * 1.2
        assert store._checkpointer.is_alive()
    assert not store._checkpointer.is_alive()  # close() ended it
