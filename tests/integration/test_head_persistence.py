"""The head writes its tables through to durable storage (SQLite by default, Redis when Ray's
RAY_REDIS_ADDRESS names one), clears them when the cluster ends cleanly, and resumes from the
tables a crashed head left (tests/integration/test_head_restart.py restarts a real cluster)."""

from __future__ import annotations

import sqlite3

import msgpack
import pytest

from tests.redis_server import PASSWORD, RedisServer, require_redis
from zray._private.head import store as H


def named_actor_and_group(zray):
    @zray.remote
    class Counter:
        def ping(self):
            return "pong"

    counter = Counter.options(name="durable", namespace="ns").remote()
    assert zray.get(counter.ping.remote(), timeout=60) == "pong"
    from zray.util.placement_group import placement_group

    group = placement_group([{"CPU": 1}])
    assert zray.get(group.ready(), timeout=60)
    return counter


def rows(path: str, table: str) -> dict:
    # Read past the head's lock, as an operator would: WAL lets a reader in beside the writer.
    with sqlite3.connect(path) as db:
        return {
            bytes(k): bytes(v)
            for k, v in db.execute("SELECT key, value FROM head WHERE tbl = ?", (table,))
        }


def test_sqlite_tables_are_written_through_and_cleared_at_shutdown(fresh, tmp_path, monkeypatch):
    path = str(tmp_path / "state.db")
    monkeypatch.setenv("ZRAY_HEAD_STATE_PATH", path)
    zray = fresh
    zray.init(num_cpus=2)
    counter = named_actor_and_group(zray)

    actors = [msgpack.unpackb(v) for v in rows(path, "actors").values()]
    assert [(a["state"], a["spec"]["name"]) for a in actors] == [("ALIVE", "durable")]
    assert list(rows(path, "named_actors")) == [b"ns\0durable"]
    assert len(rows(path, "actor_args")) == 1
    assert [msgpack.unpackb(v)["state"] for v in rows(path, "placement_groups").values()] == [
        "CREATED"
    ]
    assert [msgpack.unpackb(v)["alive"] for v in rows(path, "jobs").values()] == [True]
    assert [msgpack.unpackb(v)["is_head"] for v in rows(path, "nodes").values()] == [True]
    assert rows(path, "kv")  # the exported class

    zray.kill(counter)
    deadline_rows = None
    for _ in range(100):  # the kill is asynchronous: bounded wait for the head's write
        deadline_rows = [msgpack.unpackb(v)["state"] for v in rows(path, "actors").values()]
        if deadline_rows == ["DEAD"]:
            break
        import time

        time.sleep(0.05)
    assert deadline_rows == ["DEAD"]
    assert rows(path, "named_actors") == {}  # the name is free again

    zray.shutdown()
    with H.SqliteStore(path) as store:  # the head let go of it, and left nothing to resume
        assert store.empty()


def test_a_head_resumes_the_tables_a_crashed_head_left(fresh, tmp_path, monkeypatch):
    """A job of a driver no node reports is over once the head has heard from every node it
    knew; the KV entries are back."""
    path = str(tmp_path / "state.db")
    with H.SqliteStore(path) as store:
        store.put("jobs", b"\x07\x00\x00\x00", msgpack.packb({"alive": True, "driver_id": b"x"}))
        store.put("kv", b"user\0key", b"kept")
    monkeypatch.setenv("ZRAY_HEAD_STATE_PATH", path)
    fresh.init(num_cpus=1)
    from zray._private.core import runtime
    from zray._private.wire import protocol as P

    core = runtime.core
    reply, _ = core.requests.call(core.head_address, P.KvGet("user", b"key", 0.0), 30)
    assert reply == P.KvValue(True, b"kept")
    jobs = {bytes(k): msgpack.unpackb(v) for k, v in rows(path, "jobs").items()}
    assert jobs[b"\x07\x00\x00\x00"]["alive"] is False  # nobody came back for it
    assert [j for j in jobs.values() if j["alive"]]  # ours, numbered after it
    assert max(jobs) == b"\x08\x00\x00\x00"


def test_persistence_can_be_switched_off(fresh, tmp_path, monkeypatch):
    path = str(tmp_path / "state.db")
    monkeypatch.setenv("ZRAY_HEAD_STATE_PATH", path)
    monkeypatch.setenv("ZRAY_HEAD_PERSISTENCE", "0")
    fresh.init(num_cpus=1)
    named_actor_and_group(fresh)
    fresh.shutdown()
    assert not (tmp_path / "state.db").exists()


@pytest.fixture
def redis(fresh):
    """Function-scoped and set up after `fresh`, so it is stopped before `fresh` checks that
    no process is left."""
    require_redis()
    server = RedisServer()
    yield server
    server.stop()


def test_ray_redis_variables_select_the_redis_store(fresh, redis, monkeypatch):
    monkeypatch.setenv("RAY_REDIS_ADDRESS", redis.address)
    monkeypatch.setenv("RAY_REDIS_PASSWORD", PASSWORD)
    zray = fresh
    zray.init(num_cpus=2)
    named_actor_and_group(zray)
    with H.RedisStore(redis.address, PASSWORD) as store:  # Ray's namespace: "default"
        tables = store.load()
        assert list(tables["named_actors"]) == [b"ns\0durable"]
        assert [msgpack.unpackb(v)["state"] for v in tables["actors"].values()] == ["ALIVE"]
        assert tables["nodes"] and tables["jobs"] and tables["placement_groups"]
        zray.shutdown()
        assert store.empty()


def test_zray_start_head_state_path_and_redis_password(fresh, redis, tmp_path):
    """`zray start --head` takes --head-state-path, and --redis-password (honoured, not warned
    about) with RAY_REDIS_ADDRESS; `zray stop` is a clean end that clears the tables."""
    import os
    import shutil

    from tests.integration.test_cli import short_tmp, zray_cli
    from tests.integration.test_lifecycle import ROOT

    root = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    path = str(tmp_path / "cli-state.db")
    try:
        started = zray_cli(
            "start", "--head", "--port", "0", "--num-cpus", "1", "--head-state-path", path, env=env
        )
        assert started.returncode == 0, started.stderr
        assert set(rows(path, "nodes")) and rows(path, "jobs") == {}
        stopped = zray_cli("stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        with H.SqliteStore(path) as store:
            assert store.empty()

        redis_env = dict(env, RAY_REDIS_ADDRESS=redis.address)
        started = zray_cli(
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "1",
            "--redis-password",
            PASSWORD,
            env=redis_env,
        )
        assert started.returncode == 0, started.stderr
        assert "redis-password" not in started.stderr  # used, so no "ignoring" warning
        with H.RedisStore(redis.address, PASSWORD) as store:
            assert store.load()["nodes"]
            assert zray_cli("stop", env=env).returncode == 0
            assert store.empty()
    finally:
        zray_cli("stop", "--force", env=env)
        shutil.rmtree(root, ignore_errors=True)
