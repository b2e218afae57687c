"""Handshake authentication of Endpoints: token holders get through, nobody else is heard."""

import os
import stat
import time

import pytest
import zmq

from zray._private.wire import protocol as P
from zray._private.wire import security
from zray._private.wire.security import AuthenticationError, Credentials
from zray._private.wire.transport import Endpoint, serve_context

TOKEN = "unit-test-token"


@pytest.fixture(params=[False, True], ids=["plain", "curve"])
def server(request):
    """An Endpoint whose inbox demands TOKEN, and its context."""
    ctx = zmq.Context()
    creds = Credentials(TOKEN, encrypt=request.param)
    zap = serve_context(ctx, creds)
    endpoint = Endpoint(b"server", ["tcp://127.0.0.1:*"], ctx, creds, count_rejections=True)
    yield endpoint, zap
    endpoint.close()
    ctx.term()


def receive(endpoint: Endpoint, timeout: float):
    """Every non-Hello message the inbox yields within `timeout` (rejection events counted)."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoint.read_monitor()
        if endpoint.inbox.poll(50):
            received = endpoint.receive()
            if received is not None:
                got.append(received)
    endpoint.read_monitor()
    return got


def raw_client(ctx, address: str, setup):
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    setup(sock)
    sock.connect(address)
    sock.send_multipart(P.encode(P.Hello("tcp://127.0.0.1:1")))
    sock.send_multipart(
        P.encode(P.RequestLease(1, {"CPU": 1.0}, b"j", "DEFAULT", False, b"", False, ""), seq=7)
    )
    return sock


def test_keys_are_derived_from_the_token():
    a = security._keypair("one", "server")
    assert a == security._keypair("one", "server")
    assert a != security._keypair("two", "server")
    assert a != security._keypair("one", "client")
    assert zmq.curve_public(a[1]) == a[0]


def test_empty_token_is_refused():
    with pytest.raises(ValueError):
        Credentials("")


def test_token_holder_is_heard(server):
    endpoint, zap = server
    ctx = zmq.Context()
    try:
        sock = raw_client(ctx, endpoint.address, endpoint.creds.present)
        got = receive(endpoint, 2.0)
        sock.close()
    finally:
        ctx.term()
    assert [type(m[1]) for m in got] == [P.RequestLease]
    assert zap.accepted >= 1 and zap.rejected == 0 and endpoint.rejected == 0


@pytest.mark.parametrize("who", ["wrong token", "no credentials", "other mechanism"])
def test_strangers_are_never_heard(server, who):
    endpoint, zap = server

    def setup(sock):
        if who == "wrong token":
            Credentials("not-the-token", endpoint.creds.encrypt).present(sock)
        elif who == "other mechanism":
            Credentials(TOKEN, not endpoint.creds.encrypt).present(sock)

    ctx = zmq.Context()
    try:
        sock = raw_client(ctx, endpoint.address, setup)
        got = receive(endpoint, 1.0)
        sock.close()
    finally:
        ctx.term()
    assert got == [] and endpoint.peers == {}
    assert endpoint.rejected >= 1


def test_negotiate_upgrades_to_encryption_but_never_downgrades():
    ctx = zmq.Context()
    try:
        for server_encrypts in (True, False):
            creds = Credentials(TOKEN, server_encrypts)
            zap_ctx = zmq.Context()
            serve_context(zap_ctx, creds)
            endpoint = Endpoint(b"s", ["tcp://127.0.0.1:*"], zap_ctx, creds)
            try:
                got = security.negotiate(ctx, endpoint.address, Credentials(TOKEN, False), 5)
                assert got.encrypt == server_encrypts
                if not server_encrypts:
                    with pytest.raises(AuthenticationError, match="requires it"):
                        security.negotiate(ctx, endpoint.address, Credentials(TOKEN, True), 5)
                for encrypt in (False, True):
                    why = (
                        "requires it"
                        if encrypt and not server_encrypts
                        else "rejected our cluster token"
                    )
                    with pytest.raises(AuthenticationError, match=why):
                        security.negotiate(ctx, endpoint.address, Credentials("x", encrypt), 5)
            finally:
                endpoint.close()
                zap_ctx.term()
    finally:
        ctx.term()


def test_unreachable_peer_is_reported_in_bounded_time():
    ctx = zmq.Context()
    try:
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="no zray process answered"):
            security.check_handshake(ctx, "tcp://127.0.0.1:1", Credentials(TOKEN), 0.5)
        assert time.monotonic() - start < 3
    finally:
        ctx.term()


def test_token_file_is_private_and_found_by_head_address(tmp_path):
    sessions = []
    for name, token, head in (("a", "ta", "tcp://127.0.0.1:1"), ("b", "tb", "tcp://127.0.0.1:2")):
        path = tmp_path / name
        path.mkdir()
        (path / security.TOKEN_FILE).write_text("old")
        os.chmod(path / security.TOKEN_FILE, 0o644)
        security.write_session_files(str(path), Credentials(token, name == "b"), head)
        assert stat.S_IMODE(os.stat(path / security.TOKEN_FILE).st_mode) == 0o600
        assert security.read_token(str(path)) == token
        sessions.append(str(path))
    assert security.local_credentials("tcp://127.0.0.1:2", sessions) == Credentials("tb", True)
    assert security.local_credentials("tcp://127.0.0.1:9", sessions) is None  # ambiguous
    assert security.local_credentials("tcp://127.0.0.1:9", sessions[:1]) == Credentials("ta")
    # Joining nodes send it only to the address a head recorded, never to a guess.
    assert security.local_credentials("tcp://127.0.0.1:9", sessions[:1], exact=True) is None
    assert security.local_credentials("tcp://127.0.0.1:1", sessions, exact=True) == Credentials(
        "ta"
    )


def test_generated_tokens_never_look_like_an_option():
    from zray._private.wire.security import new_token

    tokens = [new_token() for _ in range(2000)]  # ~31 would start with '-' by chance
    assert not any(t.startswith("-") for t in tokens) and len(set(tokens)) == 2000
