"""Cluster authentication and encryption at the ZeroMQ handshake.

Every process holds the cluster token. Inboxes are ZeroMQ servers (PLAIN, or CURVE when the
cluster is encrypted); outboxes present the token. A ZAP handler thread per ZeroMQ context
decides each handshake, so a peer that cannot prove it holds the token never gets a message
delivered to our inbox: authentication is per connection, not per message, and costs nothing
once a connection is up. ROUTER identities are chosen by the sender, so an in-band proof (a
Hello carrying the token) could be sidestepped by a peer reusing an authenticated identity.

With encryption, both CURVE keypairs are derived from the token: the server's so that token
holders know its public key without any exchange, the client's so that the ZAP handler can
demand the one public key only token holders can prove they own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import struct
import threading
import time
from functools import lru_cache

import zmq
from zmq.utils import z85

logger = logging.getLogger(__name__)

TOKEN_FILE = "token"
CLUSTER_FILE = "cluster.json"
PLAIN_USER = b"zray"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class AuthenticationError(ConnectionError):
    pass


def new_token() -> str:
    """A url-safe token that never starts with '-': `--token TOKEN` would otherwise read it as
    an option (1 start in 64)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


@lru_cache(maxsize=8)
def _keypair(token: str, role: str) -> tuple[bytes, bytes]:
    secret = z85.encode(hashlib.sha256(f"zray-curve-{role}:{token}".encode()).digest())
    return zmq.curve_public(secret), secret


@dataclasses.dataclass(frozen=True)
class Credentials:
    token: str
    encrypt: bool = False

    def __post_init__(self):
        if not self.token:
            raise ValueError("a zray cluster token must not be empty")

    @classmethod
    def from_config(cls) -> "Credentials":
        from zray._config import config

        return cls(config.token, config.encrypt)

    def serve(self, sock: zmq.Socket):
        """Makes `sock` (an inbox) demand the token from every connecting peer."""
        if self.encrypt:
            public, secret = _keypair(self.token, "server")
            sock.curve_server = True
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        else:
            sock.plain_server = True

    def present(self, sock: zmq.Socket):
        """Makes `sock` (an outbox) prove the token to the peer it connects to."""
        if self.encrypt:
            sock.curve_serverkey = _keypair(self.token, "server")[0]
            sock.curve_publickey, sock.curve_secretkey = _keypair(self.token, "client")
        else:
            sock.plain_username = PLAIN_USER
            sock.plain_password = self.token.encode()

    def accepts(self, mechanism: bytes, credentials: list) -> bool:
        if self.encrypt:
            return (
                mechanism == b"CURVE"
                and len(credentials) == 1
                and hmac.compare_digest(
                    credentials[0], z85.decode(_keypair(self.token, "client")[0])
                )
            )
        return (
            mechanism == b"PLAIN"
            and len(credentials) == 2
            and hmac.compare_digest(credentials[1], self.token.encode())
        )


class ZapHandler:
    """Answers the ZAP requests of every server socket of one context. It must exist before
    those sockets accept connections; it ends when the context is terminated."""

    def __init__(self, ctx: zmq.Context, creds: Credentials):
        self.creds = creds
        self.accepted = 0
        self.rejected = 0
        self._socket = ctx.socket(zmq.REP)
        self._socket.linger = 0
        self._socket.bind(ZAP_ENDPOINT)
        self._thread = threading.Thread(target=self._run, name="zray-zap", daemon=True)
        self._thread.start()

    def _run(self):
        sock = self._socket
        try:
            while True:
                request = sock.recv_multipart()
                sock.send_multipart(self._answer(request))
        except zmq.ZMQError:
            pass  # ETERM: the context is closing
        finally:
            sock.close(linger=0)

    def _answer(self, request: list) -> list:
        if len(request) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, _domain, peer, _identity, mechanism = request[:6]
        if self.creds.accepts(mechanism, request[6:]):
            self.accepted += 1
            return [version, request_id, b"200", b"OK", b"zray", b""]
        self.rejected += 1
        if self.rejected <= 10 or self.rejected % 1000 == 0:
            logger.warning(
                "rejected connection #%d from %s: %s credentials do not match the cluster token",
                self.rejected,
                peer.decode(errors="replace") or "ipc",
                mechanism.decode(errors="replace"),
            )
        return [version, request_id, b"400", b"wrong cluster token", b"", b""]


class RejectionCounter:
    """Counts and logs failed handshakes seen by a server socket's monitor: wrong tokens, and
    peers that do not even speak our mechanism (no credentials, or encryption on one side)."""

    def __init__(self, sock: zmq.Socket, name: str):
        self.name = name
        self.socket = sock.get_monitor_socket(HANDSHAKE_FAILURES)
        self.count = 0

    def read(self):
        while self.socket.poll(0):
            try:
                kind, value, endpoint = monitor_event(self.socket.recv_multipart())
            except (zmq.ZMQError, ValueError):
                return
            self.count += 1
            if self.count <= 10 or self.count % 1000 == 0:
                logger.warning(
                    "%s: rejected connection #%d on %s (%s)",
                    self.name,
                    self.count,
                    endpoint.decode(errors="replace"),
                    _why(kind, value),
                )

    def close(self):
        self.socket.close(linger=0)


def monitor_event(frames) -> tuple[int, int, bytes]:
    """(event, value, endpoint) of a libzmq monitor message: `<Hi` then the endpoint.
    pyzmq's own parser lives in zmq.utils.monitor, which imports asyncio: a fifth of a node
    daemon's start-up."""
    if len(frames) != 2 or len(frames[0]) != 6:
        raise ValueError(f"not a monitor event: {len(frames)} frames")
    kind, value = _MONITOR_EVENT.unpack(frames[0])
    return kind, value, bytes(frames[1])


_MONITOR_EVENT = struct.Struct("=Hi")


def _why(kind: int, value: int) -> str:
    if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"authentication refused, status {value}"
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "peer uses another security mechanism"
    return f"handshake failed, error {value:#x}"


OK, REFUSED, BAD_TOKEN = "ok", "refused", "bad token"


def check_handshake(ctx: zmq.Context, address: str, creds: Credentials, timeout: float) -> str:
    """Connects to `address` and waits (bounded) for the security handshake: OK, BAD_TOKEN (a
    PLAIN server said so) or REFUSED (the peer hung up: a wrong CURVE key, or another
    mechanism; libzmq reports a mismatch only when the hang-up races the right way)."""
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    creds.present(sock)
    monitor = sock.get_monitor_socket()
    try:
        sock.connect(address)
        deadline = time.monotonic() + timeout
        connected = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectionError(f"no zray process answered at {address} within {timeout}s")
            if not monitor.poll(min(remaining, 0.5) * 1000):
                continue
            kind = monitor_event(monitor.recv_multipart())[0]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return OK
            if kind == zmq.EVENT_CONNECTED:
                connected = True
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return BAD_TOKEN
            elif kind & HANDSHAKE_FAILURES or (kind == zmq.EVENT_DISCONNECTED and connected):
                return REFUSED
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def negotiate(ctx: zmq.Context, address: str, creds: Credentials, timeout: float) -> Credentials:
    """Credentials that `address` accepts, or a clear AuthenticationError. A process not set to
    encrypt meets a head that encrypts with CURVE (no credential is sent before the mechanisms
    are compared, so trying costs nothing); the reverse never happens, so an impostor cannot
    talk us out of encryption and into sending the token in the clear."""
    rejected = AuthenticationError(f"{address} rejected our cluster token")
    outcome = check_handshake(ctx, address, creds, timeout)
    if outcome == OK:
        return creds
    if outcome == BAD_TOKEN:
        raise rejected
    if creds.encrypt:
        # A decoy password tells a PLAIN head apart (it answers "bad token") at no risk.
        if check_handshake(ctx, address, Credentials("not-a-token"), timeout) == BAD_TOKEN:
            raise AuthenticationError(
                f"{address} does not use encryption, but this process requires it "
                f"(--encrypt or ZRAY_ENCRYPT=1)"
            )
        raise rejected
    upgraded = dataclasses.replace(creds, encrypt=True)
    if check_handshake(ctx, address, upgraded, timeout) != OK:
        raise rejected
    logger.info("the cluster at %s is encrypted: using CURVE", address)
    return upgraded


# ---------------------------------------------------------------------- session files


def write_session_files(session_dir: str, creds: Credentials, head_address: str):
    path = os.path.join(session_dir, TOKEN_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the file may predate us with looser permissions
        os.write(fd, creds.token.encode() + b"\n")
    finally:
        os.close(fd)
    with open(os.path.join(session_dir, CLUSTER_FILE), "w") as f:
        json.dump({"head_address": head_address, "encrypt": creds.encrypt}, f)


def read_token(session_dir: str) -> str:
    with open(os.path.join(session_dir, TOKEN_FILE)) as f:
        return f.read().strip()


def read_cluster_info(session_dir: str) -> dict:
    with open(os.path.join(session_dir, CLUSTER_FILE)) as f:
        return json.load(f)


def local_credentials(
    head_address: str, live_sessions: list, exact: bool = False
) -> Credentials | None:
    """The credentials a node of this machine holds for the cluster at `head_address`; failing
    an exact address match, unless `exact`, those of the only cluster with a node here."""
    found = []
    for session_dir in live_sessions:
        try:
            info = read_cluster_info(session_dir)
            creds = Credentials(read_token(session_dir), bool(info.get("encrypt")))
        except (OSError, ValueError, AttributeError):
            continue
        if info.get("head_address") == head_address:
            return creds
        found.append(creds)
    tokens = {c.token for c in found}
    return found[0] if len(tokens) == 1 and not exact else None
