"""Malformed messages never crash a daemon: they are dropped and counted, and work goes on."""
import random
import struct
import time

import msgpack
import zmq

from zray._private import protocol as P


def garbage(rng: random.Random, types: list) -> list:
    """One malformed multipart message of a random kind."""
    kind = rng.randrange(7)
    if kind == 0:  # random bytes
        return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 4))]
    if kind == 1:  # truncated header
        return [struct.pack("<BBHI", 1, 1, 0, 0)[: rng.randrange(0, 8)], b""]
    if kind == 2:  # wrong version
        return [struct.pack("<BBHI", rng.randrange(2, 256), rng.choice(types), 0, 0),
                msgpack.packb([])]
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
    values = [rng.choice([2**63 - 1, -1, "x" * 1000, b"", None, [], {}, 1e308])
              for _ in range(nfields)]
    return [header, msgpack.packb(values)] + [b"\x00" * rng.randrange(0, 3)]


def test_ten_thousand_malformed_messages_then_a_real_job(ray):
    import zray._private.runtime as runtime

    core = runtime.core
    rng = random.Random(20261122)
    # A ShutdownNode whose reason is any string is well-formed, and a member may send it.
    types = sorted(c for c, cls in P.message_types().items() if cls is not P.ShutdownNode)
    ctx = zmq.Context()
    sent = 0
    try:
        for address in (core.node_address, core.head_address):
            from zray._private.transport import choose_address

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
