"""Direct calls (zray/_private/wire/direct.py, pacing.py): decoding, sends that never block, held sends,
batches, and a server that only serves its own user. The framing itself is tested for both
implementations in test_fast_stream.py."""

from __future__ import annotations

import os
import select
import socket
import threading

from hypothesis import HealthCheck, given, settings

from tests import direct_garbage
from zray._fast import Frame, Unpacker
from zray._private.wire import direct, pacing
from zray._private.wire import protocol as P


def test_decode_drops_undecodable_messages():
    assert direct.decode([Frame(memoryview(b"h"))]) is None
    assert direct.decode([Frame(memoryview(b"hdr")), Frame(memoryview(b"x"))]) is None
    header, body = P.encode(P.Hello("tcp://127.0.0.1:1"), 7)
    msg, seq, flags, payload = direct.decode(
        [Frame(memoryview(header)), Frame(memoryview(body)), Frame(memoryview(b"p"))]
    )
    assert msg == P.Hello("tcp://127.0.0.1:1") and seq == 7 and payload[0].bytes == b"p"


def test_send_queues_what_the_socket_cannot_take_and_flushes_in_order():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender = direct.Connection(a)
    backlogs = []
    sender.on_backlog = backlogs.append
    msg = P.Hello("tcp://127.0.0.1:1")
    payload = [b"y" * 100_000]
    count = 200  # 20 MB: far more than the socket buffers
    for _ in range(count):
        assert sender.send(msg, payload=payload)  # never blocks
    assert sender.backlogged and backlogs == [sender]
    b.setblocking(False)
    unpacker, received = Unpacker(), []
    while len(received) < count:
        select.select([b], [a] if sender.backlogged else [], [], 5)
        sender.flush()
        try:
            received += unpacker.feed(b.recv(1 << 20))
        except BlockingIOError:
            pass
    assert not sender.backlogged
    assert all(direct.decode(m)[0] == msg and m[2].bytes == payload[0] for m in received)
    sender.close()
    b.close()


def _pending_messages(sock) -> list:
    """Decoded Hello addresses the peer can read right now (non-blocking)."""
    sock.setblocking(False)
    unpacker, received = Unpacker(), []
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            break
        received += unpacker.feed(data)
    return [direct.decode(m)[0].address for m in received]


def test_held_sends_leave_in_order_on_release_or_once_hold_max_wait():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender = direct.Connection(a)
    for i in range(3):
        assert sender.send(P.Hello(f"h{i}"), hold=True)
    assert _pending_messages(b) == []
    assert sender.send(P.Hello("now"))  # an unheld send takes the held ones with it, first
    assert _pending_messages(b) == ["h0", "h1", "h2", "now"]
    for i in range(direct.HOLD_MAX - 1):
        sender.send(P.Hello(f"x{i}"), hold=True)
    assert _pending_messages(b) == []
    sender.send(P.Hello("last"), hold=True)  # the HOLD_MAX-th: all go
    assert _pending_messages(b) == [f"x{i}" for i in range(direct.HOLD_MAX - 1)] + ["last"]
    sender.send(P.Hello("r"), hold=True)
    assert sender.release() and _pending_messages(b) == ["r"]
    sender.close()
    b.close()


def test_a_message_of_more_buffers_than_sendmsg_takes_is_split():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender = direct.Connection(a)
    payload = [b"%d" % i for i in range(direct.IOV_MAX + 10)]
    assert sender.send(P.Hello("many"), payload=payload) and not sender.closed
    b.setblocking(False)
    [message] = Unpacker().feed(b.recv(1 << 20))
    assert [f.bytes for f in message[2:]] == payload
    sender.close()
    b.close()


def test_batcher_sends_the_first_call_of_a_streak_at_once_and_holds_the_rest():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    connection = direct.Connection(a)
    wakes = []
    batcher = pacing.Batcher(lambda: wakes.append(1))
    assert batcher.send(connection, P.Hello("first"), ())
    assert _pending_messages(b) == ["first"] and not batcher.holding
    batcher.send(connection, P.Hello("second"), ())
    batcher.send(connection, P.Hello("third"), ())
    assert _pending_messages(b) == [] and batcher.holding and wakes == [1]
    batcher.release_due(batcher.deadline - 0.0005)  # not due yet
    assert _pending_messages(b) == []
    batcher.release_due(batcher.deadline)
    assert _pending_messages(b) == ["second", "third"] and not batcher.holding
    batcher.send(connection, P.Hello("alone"), ())  # the streak ended: at once again
    assert _pending_messages(b) == ["alone"]
    batcher.send(connection, P.Hello("held"), ())
    batcher.release()  # what a get does
    assert _pending_messages(b) == ["held"] and wakes == [1, 1]
    connection.close()
    b.close()


def test_send_to_a_closed_peer_reports_failure():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.close()
    connection = direct.Connection(a)
    assert not connection.send(P.Hello("tcp://127.0.0.1:1"))
    assert connection.closed
    connection.close()


def test_server_delivers_calls_and_answers_on_the_same_connection(tmp_path):
    server = direct.Server(str(tmp_path / "w.sock"))
    channels = direct.Channels(lambda: None)
    try:
        connection = channels.get("tcp://127.0.0.1:1|" + server.address)
        assert connection is not None
        assert channels.get("tcp://127.0.0.1:1|" + server.address) is connection
        assert channels.get("tcp://127.0.0.1:2|direct:///no/such/path") is None
        for i in range(3):
            connection.send(P.Hello(f"tcp://127.0.0.1:{i + 1}"))
        for _ in range(10):
            if len(server.ready) == 3:
                break
            server.poll(1.0)
        calls = [server.ready.popleft() for _ in range(3)]
        assert [c[0].address for c in calls] == [f"tcp://127.0.0.1:{i + 1}" for i in range(3)]
        calls[0][2].send(P.Hello("tcp://127.0.0.1:9"), payload=[b"answer"])
        select.select([connection.fd], [], [], 5)
        [answer] = connection.read()
        assert direct.decode(answer)[0].address == "tcp://127.0.0.1:9"
    finally:
        channels.close()
        server.close()
    assert not os.path.exists(str(tmp_path / "w.sock"))


def test_wake_interrupts_poll(tmp_path):
    server = direct.Server(str(tmp_path / "w.sock"))
    try:
        threading.Timer(0.05, server.wake).start()
        done = threading.Event()
        thread = threading.Thread(target=lambda: (server.poll(10.0), done.set()))
        thread.start()
        assert done.wait(5.0)
        thread.join(5.0)
    finally:
        server.close()


def test_server_refuses_other_users(tmp_path, monkeypatch):
    server = direct.Server(str(tmp_path / "w.sock"))
    uid = os.getuid()
    monkeypatch.setattr(direct.os, "getuid", lambda: uid + 1)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(server.path)
        server.poll(1.0)
        assert server.refused == 1 and not server.connections
        client.settimeout(5.0)
        assert client.recv(1) == b""  # closed by the server
    finally:
        client.close()
        server.close()


def test_spin_returns_what_arrives_within_its_window_and_gives_up_after_it():
    import time

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    poll = select.poll()
    poll.register(b, select.POLLIN)
    started = time.perf_counter()
    assert pacing.spin(lambda: poll.poll(0), 0.002) == []
    assert time.perf_counter() - started >= 0.002
    threading.Timer(0.001, lambda: a.send(b"x")).start()
    assert pacing.spin(lambda: poll.poll(0), 1.0) == [(b.fileno(), select.POLLIN)]
    assert time.perf_counter() - started < 0.5
    calls = []
    pacing.spin(lambda: calls.append(1) or [], 0)  # no window: one poll
    assert calls == [1]
    a.close()
    b.close()


def _serve_until(server, condition, timeout=5.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        server.poll(0.05)
    return condition()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(garbage=direct_garbage.garbage())
def test_garbage_on_a_direct_socket_ends_that_connection_only(tmp_path_factory, garbage):
    """Whatever a stranger writes, no call reaches `ready` but the real owner's, the server
    keeps its other connections, and a stream it cannot use is counted and closed."""
    from zray._private.core.push_checks import PushChecker

    checker = PushChecker()
    checker.actor_id = direct_garbage.ACTOR_ID
    path = str(tmp_path_factory.mktemp("direct") / "w.sock")
    server = direct.Server(path, checker.problem)
    owner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    legit = direct_garbage.stream(P.encode(direct_garbage.call(task_id=b"L" * 24)) + [b"args"])
    try:
        owner.connect(path)
        owner.sendall(legit)
        assert _serve_until(server, lambda: len(server.ready) == 1)
        stranger.connect(path)
        assert _serve_until(server, lambda: len(server.connections) == 2)
        stranger.sendall(garbage)
        stranger.shutdown(socket.SHUT_WR)
        owner.sendall(legit)
        assert _serve_until(server, lambda: len(server.connections) == 1 and len(server.ready) == 2)
        assert [(m.task_id, c.fd) for m, _, c in server.ready] == [
            (b"L" * 24, server.ready[0][2].fd)
        ] * 2
        stranger.settimeout(5.0)
        assert stranger.recv(1) == b""  # the server let go of it
    finally:
        owner.close()
        stranger.close()
        server.close()


def test_a_stream_that_is_not_framing_is_counted_and_closed(tmp_path):
    server = direct.Server(str(tmp_path / "w.sock"), lambda msg, nframes: None)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(server.path)
        client.sendall(b"\xff" * 64)  # a message of 4294967295 frames
        assert _serve_until(server, lambda: server.dropped == 1 and not server.connections)
        client.settimeout(5.0)
        assert client.recv(1) == b""
    finally:
        client.close()
        server.close()
