"""Hypothesis state machine of a head restart: random sequences of what changes the head's
tables (jobs, KV puts, actors created, placed, started, failing, killed and restarted, named
and detached ones, placement groups, nodes), with the head crashing between any two of them,
or in the middle of one (its store fails the next write: the change is never acknowledged), and
a new head restored from the store. The restored head's tables must equal what the crashed
head had acknowledged: everything it answered, nothing it did not.

It drives the real HeadService through its message handlers with an in-memory endpoint; the
store is a real SQLite file, or a real redis-server (tests/redis_server.py). That a write
acknowledged by the store survives a SIGKILL of its process is tested by
test_head_store_recovery.py; this test is about what the head writes and how it reads it back.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.redis_server import PASSWORD, RedisServer, require_redis
from zray._config import config
from zray._private.head import actor_manager as A
from zray._private.head import store as H
from zray._private.head.service import HeadService
from zray._private.head.tables import HeadTables
from zray._private.wire import protocol as P


class _Outbox:
    def watch_disconnects(self):
        pass

    def disconnected(self):
        return False


class FakeEndpoint:
    """What the head sends, kept for the test to answer; no sockets."""

    def __init__(self):
        self.peers = {b"driver": "ipc://driver", b"node": "ipc://node"}
        self.sent: list = []
        self.dropped = self.rejected = 0

    def send(self, address, msg, seq=0, flags=0, payload=()):
        self.sent.append((address, msg, seq))

    def reply(self, identity, msg, seq, payload=()):
        self.sent.append((identity, msg, seq))

    def outbox(self, address):
        return _Outbox()


class Crash(Exception):
    pass


class FailingStore:
    """Wraps a store: once armed, its next write fails as a crash would stop it."""

    def __init__(self, store: H.HeadStore):
        self.store = store
        self.armed = False
        self.description = store.description

    def write(self, ops):
        if self.armed:
            self.armed = False
            raise Crash()
        self.store.write(ops)

    def __getattr__(self, name):
        return getattr(self.store, name)


def durable_view(head: HeadService) -> dict:
    """What a restarted head must have back. Where a non-ALIVE actor's worker was is not: a
    restarted head places PENDING and RESTARTING actors again."""
    actors = {}
    for actor_id, a in head.actors.actors.items():
        spec = dict(a.spec)
        spec.pop("gpu_ids", None)
        kept = (a.address, a.worker_id, a.lease_id) if a.state == A.ALIVE else None
        actors[actor_id] = (
            spec,
            a.state,
            a.num_restarts,
            a.death_cause,
            a.error,
            a.error_text,
            a.no_restart,
            kept,
            tuple(head.actor_payloads.get(actor_id, [])),
        )
    groups = {
        pg_id: (g.name, g.namespace, g.strategy, g.detached, g.job_id, g.state, list(g.nodes))
        for pg_id, g in head.placement.groups.items()
        if g.state != "REMOVED"
    }
    nodes = {n.node_id: (n.address, n.alive, n.is_head) for n in head.nodes.values()}
    return {
        "jobs": {j: (r["driver_id"], r["namespace"], r["alive"]) for j, r in head.jobs.items()},
        "kv": dict(head.kv),
        "actors": actors,
        "names": dict(head.actors.names),
        "placement_groups": groups,
        "nodes": nodes,
    }


NAMES = st.sampled_from(["", "", "alpha", "beta"])


class HeadRestart(RuleBasedStateMachine):
    stores = None  # set by the test: fresh() and reopen() -> a HeadStore

    def __init__(self):
        super().__init__()
        self.store = FailingStore(self.stores.fresh())
        self.head = self._new_head()
        self.acknowledged = durable_view(self.head)
        self.next_actor = 0
        self.next_group = 0
        # Nodes number their leases from a random start, so ids never repeat across head
        # restarts; the head's request seqs do (they restart at 1), so they cannot stand in.
        self.next_lease = 1000
        self.restarts = 0

    def _new_head(self) -> HeadService:
        return HeadService(FakeEndpoint(), 3600.0, tables=HeadTables(self.store))

    def teardown(self):
        self.head.tables.store.store.close()

    # ------------------------------------------------------------------ changes

    def _apply(self, change):
        """Runs one change; it is acknowledged once the handler returns."""
        change()
        self.acknowledged = durable_view(self.head)

    @initialize()
    def a_node(self):
        # A node to place actors on, which a restarted head awaits until it comes back (with
        # the driver on it: no job or actor is judged orphaned).
        self._apply(
            lambda: self.head.on_RegisterNode(
                b"node",
                P.RegisterNode(
                    b"n" * 28, "ipc://node", "127.0.0.1", "h", {"CPU": 64.0}, 1, False, 8080
                ),
                1,
            )
        )

    @rule(namespace=st.sampled_from(["ns", "other"]))
    def register_job(self, namespace):
        self._apply(
            lambda: self.head.on_RegisterJob(
                b"driver", P.RegisterJob(b"driver", namespace, 1, {}, "non_detached"), 2
            )
        )

    @rule(
        key=st.binary(min_size=1, max_size=3),
        value=st.binary(max_size=8),
        overwrite=st.booleans(),
    )
    def kv_put(self, key, value, overwrite):
        self._apply(lambda: self.head.on_KvPut(b"driver", P.KvPut("fn", key, value, overwrite), 3))

    @rule(name=NAMES, detached=st.booleans(), max_restarts=st.sampled_from([0, 1, -1]))
    def create_actor(self, name, detached, max_restarts):
        self.next_actor += 1
        actor_id = struct.pack("<I", self.next_actor) * 4
        spec = {
            "name": name,
            "namespace": "ns",
            "lifetime": "detached" if detached else "non_detached",
            "max_restarts": max_restarts,
            "resources": {"CPU": 1.0},
            "owner_id": b"driver",
            "class_name": "C",
        }
        frames = [_Frame(b"args-%d" % self.next_actor)]
        self._apply(
            lambda: self.head.on_CreateActor(
                b"driver", P.CreateActor(actor_id, spec, 1, []), 4, frames
            )
        )

    def _lease_requests(self):
        return [
            (msg, seq)
            for _, msg, seq in self.head.endpoint.sent
            if type(msg) is P.RequestLease and seq in self.head.requests._pending
        ]

    @precondition(lambda self: self._lease_requests())
    @rule(data=st.data())
    def grant_lease(self, data):
        msg, seq = data.draw(st.sampled_from(self._lease_requests()))
        self.next_lease += 1
        worker = b"w%d" % self.next_lease
        self._apply(
            lambda: self.head.requests.deliver(
                P.LeaseGranted(msg.request_id, self.next_lease, worker, "ipc://w", b"n" * 28, []),
                seq,
                (),
            )
        )

    def _actors(self, *states):
        return sorted(a for a, actor in self.head.actors.actors.items() if actor.state in states)

    def _starting(self):
        return sorted(
            a
            for a, actor in self.head.actors.actors.items()
            if actor.state in (A.PENDING, A.RESTARTING) and actor.worker_id
        )

    @precondition(lambda self: self._starting())
    @rule(data=st.data(), ok=st.booleans())
    def actor_started(self, data, ok):
        actor_id = data.draw(st.sampled_from(self._starting()))
        payload = [] if ok else [_Frame(b"constructor error")]
        self._apply(
            lambda: self.head.on_ActorStarted(
                b"w", P.ActorStarted(actor_id, ok, len(payload), "" if ok else "boom"), 0, payload
            )
        )

    @precondition(lambda self: self._actors(A.ALIVE))
    @rule(data=st.data())
    def worker_dies(self, data):
        actor = self.head.actors.actors[data.draw(st.sampled_from(self._actors(A.ALIVE)))]
        self._apply(
            lambda: self.head.on_WorkerDied(b"node", P.WorkerDied(actor.lease_id, b"w", -9), 0)
        )

    @precondition(lambda self: self._actors(A.PENDING, A.ALIVE, A.RESTARTING))
    @rule(data=st.data(), no_restart=st.booleans())
    def kill_actor(self, data, no_restart):
        actor_id = data.draw(st.sampled_from(self._actors(A.PENDING, A.ALIVE, A.RESTARTING)))
        self._apply(
            lambda: self.head.on_KillActor(
                b"driver", P.KillActor(actor_id, no_restart, "killed"), 5
            )
        )

    @precondition(lambda self: any(j["alive"] for j in self.head.jobs.values()))
    @rule(data=st.data())
    def unregister_job(self, data):
        alive = sorted(j for j, r in self.head.jobs.items() if r["alive"])
        job_id = data.draw(st.sampled_from(alive))
        self._apply(lambda: self.head.on_UnregisterJob(b"driver", P.UnregisterJob(job_id), 0))

    @rule(name=NAMES, detached=st.booleans())
    def create_group(self, name, detached):
        self.next_group += 1
        pg_id = struct.pack("<I", self.next_group) * 4 + b"\x01\x00\x00\x00"
        msg = P.CreatePlacementGroup(
            pg_id, name, "ns", "PACK", [{"CPU": 1.0}], detached, b"\x01\x00\x00\x00", b"", b""
        )
        try:
            self._apply(lambda: self.head.on_CreatePlacementGroup(b"driver", msg, 6))
        except Exception as exc:  # a taken name is answered with an error, not raised
            raise AssertionError(f"CreatePlacementGroup raised {exc!r}")

    @precondition(lambda self: self.head.placement.groups)
    @rule(data=st.data())
    def remove_group(self, data):
        pg_id = data.draw(st.sampled_from(sorted(self.head.placement.groups)))
        self._apply(
            lambda: self.head.on_RemovePlacementGroup(b"driver", P.RemovePlacementGroup(pg_id), 7)
        )

    # ------------------------------------------------------------------ crashes

    def _restart(self):
        self.restarts += 1
        # The dead head's store is let go (the OS releases a killed process's SQLite lock),
        # and the new head opens the state afresh: nothing read back comes from a cache.
        self.store.store.close()
        self.store = FailingStore(self.stores.reopen())
        self.head = self._new_head()
        assert durable_view(self.head) == self.acknowledged
        for actor in self.head.actors.actors.values():
            event(f"restored an actor {actor.state}")
        # Its node comes back with the workers of the live actors, and the driver with it.
        alive = [a for a in self.head.actors.actors.values() if a.state == A.ALIVE]
        resume = P.ResumeNode(
            b"n" * 28,
            "ipc://node",
            "127.0.0.1",
            "h",
            {"CPU": 64.0},
            1,
            False,
            [[b"driver", "ipc://driver", "driver"]],
            [[a.lease_id, a.worker_id] for a in alive],
            [],
        )
        self._apply(lambda: self.head.on_ResumeNode(b"node", resume, 8))
        assert not self.head.recovering_until
        assert all(a.state == A.ALIVE for a in alive)

    @rule()
    def crash_between_changes(self):
        self._restart()

    @rule(
        change=st.sampled_from(["register_job", "kv_put", "create_actor", "create_group"]),
        data=st.data(),
    )
    def crash_in_a_change(self, change, data):
        """The store fails the change's first write: it is never acknowledged, and the
        restarted head has no trace of it."""
        self.store.armed = True
        before = self.acknowledged
        try:
            if change == "register_job":
                self.register_job("ns")
            elif change == "kv_put":
                self.kv_put(data.draw(st.binary(min_size=1, max_size=3)), b"lost", True)
            elif change == "create_actor":
                self.create_actor(data.draw(NAMES), False, 0)
            else:
                self.create_group(data.draw(NAMES), False)
        except Crash:
            pass
        except AssertionError as exc:
            if not isinstance(exc.__cause__ or exc.__context__, Crash):
                raise
        if self.store.armed:  # the change wrote nothing (a KvPut of a key that exists)
            self.store.armed = False
            self.acknowledged = durable_view(self.head)
        else:
            self.acknowledged = before
        self._restart()

    @invariant()
    def job_ids_are_never_reused(self):
        if self.head.jobs:
            assert self.head._next_job > max(struct.unpack("<I", j)[0] for j in self.head.jobs)


class _Frame:
    def __init__(self, data: bytes):
        self.bytes = data


RUNS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _run(stores, monkeypatch):
    monkeypatch.setattr(config, "head_reconnect_timeout_s", 3600.0)
    from hypothesis.stateful import run_state_machine_as_test

    machine = type("Machine", (HeadRestart,), {"stores": stores})
    run_state_machine_as_test(machine, settings=RUNS)


class SqliteStates:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def fresh(self):  # a file per example: each is a cluster of its own
        self.count += 1
        return self.reopen()

    def reopen(self):
        return H.SqliteStore(str(self.directory / f"state-{self.count}.sqlite3"))


class RedisStates:
    def __init__(self, server):
        self.server = server

    def fresh(self):
        store = self.reopen()
        store.clear()
        return store

    def reopen(self):
        return H.RedisStore(self.server.address, PASSWORD)


def test_a_restarted_head_has_what_was_acknowledged_sqlite(tmp_path, monkeypatch):
    _run(SqliteStates(tmp_path), monkeypatch)


def test_a_restarted_head_has_what_was_acknowledged_redis(monkeypatch):
    require_redis()
    server = RedisServer()
    try:
        _run(RedisStates(server), monkeypatch)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR")
