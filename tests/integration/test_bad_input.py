"""Malformed messages never crash a daemon: they are dropped and counted, and work goes on."""

import random
import struct
import time

import msgpack
import zmq

from zray._private.wire import protocol as P


def garbage(rng: random.Random, types: list) -> list:
    """One malformed multipart message of a random kind."""
    kind = rng.randrange(7)
    if kind == 0:  # random bytes
        return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 4))]
    if kind == 1:  # truncated header
        return [struct.pack("<BBHI", 1, 1, 0, 0)[: rng.randrange(0, 8)], b""]
    if kind == 2:  # wrong version
        return [
            struct.pack("<BBHI", rng.randrange(2, 256), rng.choice(types), 0, 0),
            msgpack.packb([]),
        ]
    if kind == 3:  # unknown type
        return [struct.pack("<BBHI", 1, rng.choice([0, 9, 99, 200, 255]), 0, 0), b"\x90"]
    code = rng.choice(types)
    header = struct.pack("<BBHI", 1, code, 0, rng.randrange(2**32))
    if kind == 4:  # valid header, garbage body
        return [header, rng.randbytes(rng.randrange(0, 200))]
    if kind == 5:  # wrong field count
        return [header, msgpack.packb([0] * rng.randrange(0, 12))]
    # right count, wrong types, and absurd sizes
    nfields = len(P.message_types()[code]._fields)
    values = [
        rng.choice([2**63 - 1, -1, "x" * 1000, b"", None, [], {}, 1e308]) for _ in range(nfields)
    ]
    return [header, msgpack.packb(values)] + [b"\x00" * rng.randrange(0, 3)]


def test_ten_thousand_malformed_messages_then_a_real_job(ray):
    import zray._private.core.runtime as runtime

    core = runtime.core
    rng = random.Random(20261122)
    # A ShutdownNode whose reason is any string is well-formed, and a member may send it.
    types = sorted(c for c, cls in P.message_types().items() if cls is not P.ShutdownNode)
    ctx = zmq.Context()
    sent = 0
    try:
        for address in (core.node_address, core.head_address):
            from zray._private.wire.transport import choose_address

            sock = ctx.socket(zmq.DEALER)
            core.creds.present(sock)  # a cluster member gone wrong: strangers never get this far
            sock.setsockopt(zmq.LINGER, 10_000)  # every message is delivered before close
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(choose_address(address))
            for _ in range(5_000):
                sock.send_multipart(garbage(rng, types))
                sent += 1
            sock.close()
    finally:
        ctx.term()
    assert sent == 10_000

    @ray.remote
    def add(a, b):
        return a + b

    # The daemons dropped everything above and still serve real work.
    assert ray.get([add.remote(i, i) for i in range(20)], timeout=60) == [2 * i for i in range(20)]

    def dropped():
        stats = core.requests.call(core.node_address, P.GetNodeStats(0), 10)[0].stats
        return stats["dropped_messages"] + stats["head"]["dropped"]

    deadline = time.monotonic() + 20
    while dropped() < 9_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dropped() >= 9_000  # the rest were well-formed enough to be handled or ignored
    assert ray.get(ray.put("still alive")) == "still alive"


def test_garbage_on_an_actors_direct_socket_and_inbox_leaves_its_callers_served(ray):
    """A process of the same user writes garbage into an actor's direct-call socket (and
    pushes unusable calls into its ZeroMQ inbox) while a real driver calls it: the worker
    drops each such stream or message, counts it, and goes on serving; nothing dies."""
    import os
    import socket
    import threading

    from hypothesis import HealthCheck, given, settings

    import zray._private.core.runtime as runtime
    from tests import direct_garbage
    from zray._private.wire.transport import choose_address

    @ray.remote
    class Target:
        def ping(self, x):
            return x

        def pid(self):
            return os.getpid()

        def dropped(self):
            core = runtime.core
            return core.direct_server.dropped, core.endpoint.dropped

    target = Target.remote()
    pid = ray.get(target.pid.remote(), timeout=60)
    core = runtime.core
    address = core.actor_submitter.actors[target._actor_id].order.address
    path = [p for p in address.split("|") if p.startswith("direct://")][0][len("direct://") :]
    stop, failures, served = threading.Event(), [], [0]

    def legit_caller():
        i = 0
        while not stop.is_set():
            try:
                assert ray.get(target.ping.remote(i), timeout=30) == i
                served[0] += 1
            except Exception as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return
            i += 1

    written = [0]

    @settings(
        max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(garbage=direct_garbage.garbage(target._actor_id))
    def write_garbage(garbage):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stranger:
            stranger.connect(path)
            try:
                stranger.sendall(garbage)
            except OSError:  # closed by the worker before all of it was read: fine
                pass
        written[0] += 1

    caller = threading.Thread(target=legit_caller)
    caller.start()
    ctx = zmq.Context()
    try:
        write_garbage()
        inbox = ctx.socket(zmq.DEALER)
        core.creds.present(inbox)
        inbox.setsockopt(zmq.LINGER, 10_000)
        inbox.connect(choose_address(address))
        for task_id in (b"short", b"z" * 24):
            bad = direct_garbage.call(
                actor_id=target._actor_id,
                task_id=task_id,
                num_returns=10**9,
                owner_address=core.address,
            )
            inbox.send_multipart(P.encode(bad) + [msgpack.packb(((), {}))])
        inbox.close()
    finally:
        stop.set()
        caller.join(60)
        ctx.term()
    assert not failures and served[0] > 0
    assert ray.get(target.pid.remote(), timeout=30) == pid  # the same worker, alive
    assert ray.get([target.ping.remote(i) for i in range(100)], timeout=30) == list(range(100))
    deadline = time.monotonic() + 10
    while ray.get(target.dropped.remote(), timeout=30)[1] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    direct_dropped, inbox_dropped = ray.get(target.dropped.remote(), timeout=30)
    assert written[0] >= 300 and direct_dropped >= 100 and inbox_dropped >= 2
    ray.kill(target)


def test_a_batch_of_creates_refuses_each_bad_entry_with_its_reason_and_creates_the_rest(ray):
    import numpy as np

    from zray._private.core import runtime

    core = runtime.core
    held = ray.put(np.ones(2**20))  # in the arena: its id exists there
    new_ids = [b"\x07" * 28, b"\x08" * 28]
    ids = [new_ids[0], held.binary(), b"\x09" * 28, "not bytes", b"\x0a" * 28, new_ids[1]]
    sizes = [4096, 4096, 2**62, 4096, -1, 8192]
    reply, _ = core.requests.call(core.node_address, P.CreateObjects(ids, sizes, core.address), 10)
    kinds = [error[0] if error else None for error in reply.errors]
    assert kinds == [None, "ObjectExists", "ObjectStoreFullError", "ValueError", "ValueError", None]
    assert reply.offsets[0] >= 0 and reply.offsets[5] >= 0 and reply.offsets[1:5] == [-1] * 4
    core.endpoint.send(core.node_address, P.SealObjects(new_ids + ["junk"]))
    found, _ = core.requests.call(core.node_address, P.GetObjects(new_ids, 10, []), 20)
    assert [location[1] for location in found.offsets] == [4096, 8192]
    core.endpoint.send(core.node_address, P.ReleaseObjects(new_ids))
    core.endpoint.send(core.node_address, P.FreeObjects(new_ids, False))
    assert ray.get(held).sum() == 2**20
