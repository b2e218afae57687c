"""ZeroMQ plumbing shared by every zray process.

Each process owns one *inbox* (a ROUTER socket) read only by its I/O loop, and one *outbox* per
peer (a DEALER socket whose identity is our id) that any thread may send on under a lock.
Messages therefore flow one way per socket, which keeps every socket single-threaded in effect
without funnelling sends through the I/O thread (that hop would cost a thread wake-up on every
task). The first message on each outbox is a Hello carrying our inbox address, so a peer can
answer us without any address in the request itself.

Every socket authenticates at the ZeroMQ handshake (zray/_private/wire/security.py): an inbox
receives nothing from a peer that has not proved it holds the cluster token.
"""

from __future__ import annotations

import itertools
import logging
import os
import resource
import threading
import time
from typing import Callable

import zmq

from zray._private.wire import protocol as P
from zray._private.wire.security import Credentials, RejectionCounter, ZapHandler

logger = logging.getLogger(__name__)

REPLY = 1  # header flag: this message answers the request with the same seq
SNDMORE = zmq.SNDMORE
ZERO_COPY_MIN = 64 * 1024


class OutboxClosed(Exception):
    """The outbox was closed under a sender (the head's link replaced it): send again through
    a fresh one."""


def _nbytes(frame) -> int:
    nbytes = getattr(frame, "nbytes", None)
    return len(frame) if nbytes is None else nbytes


class Outbox:
    __slots__ = ("address", "_socket", "_lock", "_watch")

    def __init__(
        self, ctx: zmq.Context, address: str, identity: bytes, hello: P.Hello, creds: Credentials
    ):
        sock = ctx.socket(zmq.DEALER)
        creds.present(sock)
        sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        try:
            sock.connect(address)
        except zmq.ZMQError:
            sock.close(linger=0)  # a leaked socket would hang the context's term() at exit
            raise
        sock.send_multipart(P.encode(hello))
        self.address = address
        self._socket = sock
        self._lock = threading.Lock()
        self._watch = None  # monitor socket, once someone asked to hear of disconnections

    def send(self, msg, seq: int = 0, flags: int = 0, payload=()):
        header, body = P.encode(msg, seq, flags)
        with self._lock:
            sock = self._socket
            if sock is None:
                raise OutboxClosed(self.address)
            if not payload:
                sock.send(header, SNDMORE)
                sock.send(body)
                return
            sock.send(header, SNDMORE)
            sock.send(body, SNDMORE)
            last = len(payload) - 1
            for i, frame in enumerate(payload):
                # Zero-copy frames cost ~10 us of bookkeeping each: only worth it for big ones.
                big = _nbytes(frame) >= ZERO_COPY_MIN
                sock.send(frame, SNDMORE if i < last else 0, copy=not big)

    def watch_disconnects(self):
        """From now on, `disconnected()` says whether the connection broke (the peer's
        process died, or its machine went away) since it was last asked."""
        with self._lock:
            if self._watch is None:
                self._watch = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)

    def disconnected(self) -> bool:
        watch, broke = self._watch, False
        while watch is not None:
            try:
                watch.recv_multipart(zmq.NOBLOCK)  # an event: two frames, nothing to read
            except zmq.Again:
                break
            broke = True
        return broke

    def close(self, linger_ms: int = 0):
        with self._lock:
            if self._watch is not None:  # before the socket: a live monitor hangs term()
                self._socket.disable_monitor()
                self._watch.close(linger=0)
                self._watch = None
            if self._socket is not None:
                self._socket.close(linger=linger_ms)
                self._socket = None


def choose_address(address: str) -> str:
    """A process advertises all its inbox endpoints joined by '|' (e.g. an ipc path and a tcp
    port). A peer on the same machine takes the ipc socket, which is faster; others take tcp."""
    if "|" not in address:
        return address
    # direct:// is not ZeroMQ: a worker's socket for pushed calls (zray/_private/wire/direct.py).
    parts = [part for part in address.split("|") if not part.startswith("direct://")]
    for part in parts:
        if part.startswith("ipc://") and os.path.exists(part[len("ipc://") :]):
            return part
    for part in parts:
        if not part.startswith("ipc://"):
            return part
    return parts[0]


def valid_address(address) -> bool:
    """An advertised inbox address: tcp:// or ipc:// endpoints joined by '|'. A peer's Hello
    is the only place addresses come from, so a bad one is refused there, not at reply time."""
    if not isinstance(address, str) or not 0 < len(address) <= 1024:
        return False
    return all(
        part.startswith(("tcp://", "ipc://", "direct://")) and len(part) > 6
        for part in address.split("|")
    )


def ipc_path(address: str):
    """The Unix socket path among an advertised address's endpoints, if it has one."""
    for part in address.split("|"):
        if part.startswith("ipc://"):
            return part[len("ipc://") :]
    return None


def raise_fd_limit() -> int:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit and returns it. A node
    holds a few descriptors per worker (its outboxes and their connections, the head's), and
    an owner one per direct connection: the common soft limit of 1,024 stalled a node at a few
    hundred actors. Children inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def new_context() -> zmq.Context:
    """A ZeroMQ context whose socket limit follows the descriptor limit: libzmq's default of
    1,023 sockets per context refuses the node's outboxes beyond ~500 workers (one from the
    node and one from the head per worker) with EMFILE, which looked like descriptors ran out."""
    nofile = raise_fd_limit()
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, max(1023, min(ctx.get(zmq.SOCKET_LIMIT), nofile)))
    return ctx


def serve_context(ctx: zmq.Context, creds: Credentials) -> ZapHandler:
    """Call once per context, before any of its Endpoints exist."""
    return ZapHandler(ctx, creds)


class Endpoint:
    """Inbox plus lazily created outboxes, keyed by peer address. The context must have a ZAP
    handler (serve_context): without one, libzmq would let PLAIN and CURVE peers in unchecked.
    With `count_rejections`, failed handshakes are counted (`rejected`); whoever polls the
    inbox must also poll `monitor` and call `read_monitor`."""

    def __init__(
        self,
        identity: bytes,
        bind: list[str],
        ctx: zmq.Context,
        creds: Credentials,
        count_rejections: bool = False,
        name: str = "inbox",
    ):
        self.ctx = ctx
        self.identity = identity
        self.creds = creds
        self.inbox = self.ctx.socket(zmq.ROUTER)
        creds.serve(self.inbox)
        self._rejections = RejectionCounter(self.inbox, name) if count_rejections else None
        self.monitor = self._rejections.socket if count_rejections else None
        self.inbox.setsockopt(zmq.LINGER, 0)
        self.inbox.setsockopt(zmq.RCVHWM, 0)
        self.inbox.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted peer may reuse its identity
        self.addresses = []
        for address in bind:
            self.inbox.bind(address)
            self.addresses.append(self.inbox.getsockopt(zmq.LAST_ENDPOINT).decode())
        self.address = "|".join(self.addresses)
        self._outboxes: dict[str, Outbox] = {}
        self._outbox_lock = threading.Lock()
        self.peers: dict[bytes, str] = {}  # identity -> inbox address, learned from Hello
        self.dropped = 0
        self.sent = 0  # messages handed to ZeroMQ: see Executor.reply for why it is counted

    def outbox(self, address: str) -> Outbox:
        box = self._outboxes.get(address)
        if box is None:
            with self._outbox_lock:
                box = self._outboxes.get(address)
                if box is None:
                    box = Outbox(
                        self.ctx,
                        choose_address(address),
                        self.identity,
                        P.Hello(self.address),
                        self.creds,
                    )
                    self._outboxes[address] = box
        return box

    def send(self, address: str, msg, seq: int = 0, flags: int = 0, payload=()):
        self.sent += 1
        try:
            self.outbox(address).send(msg, seq, flags, payload)
        except OutboxClosed:  # replaced under us (HeadLink): the new one says Hello first
            self.outbox(address).send(msg, seq, flags, payload)

    def reply(self, identity: bytes, msg, seq: int, payload=()):
        address = self.peers.get(identity)
        if address is None:
            logger.warning("cannot answer %s: peer never said hello", identity.hex()[:12])
            return
        self.sent += 1
        try:
            self.outbox(address).send(msg, seq, REPLY, payload)
        except OutboxClosed:
            self.outbox(address).send(msg, seq, REPLY, payload)

    def drop_outbox(self, address: str):
        with self._outbox_lock:
            box = self._outboxes.pop(address, None)
        if box is not None:
            box.close()

    def receive(self, block: bool = True):
        """Reads one message (call only from the I/O loop). Returns (identity, msg, seq, flags,
        payload), None for a message that was dropped as malformed or that was a Hello, or
        (with block=False) False when none is waiting: cheaper than polling before each read."""
        if block:
            frames = self.inbox.recv_multipart(copy=False)
        else:
            try:
                frames = self.inbox.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
        identity = frames[0].bytes
        if len(frames) < 3:
            return self.drop(identity, "too few frames")
        try:
            msg, seq, flags = P.decode(frames[1].buffer, frames[2].buffer)
        except P.ProtocolError as exc:
            return self.drop(identity, str(exc))
        except Exception as exc:  # a decoder bug must not take the daemon down
            return self.drop(identity, f"{type(exc).__name__}: {exc}")
        if type(msg) is P.Hello:
            if not valid_address(msg.address):
                return self.drop(identity, "hello with an invalid address")
            self.peers[identity] = msg.address
            return None
        return identity, msg, seq, flags, frames[3:]

    @property
    def rejected(self) -> int:
        return self._rejections.count if self._rejections else 0

    def read_monitor(self):
        if self._rejections is not None:
            self._rejections.read()

    def drop(self, identity: bytes, why: str):
        """Counts (and now and then logs) a message that is not handled: malformed here, or
        found unusable by its handler."""
        self.dropped += 1
        if self.dropped <= 10 or self.dropped % 1000 == 0:
            logger.warning(
                "dropped message #%d from %s: %s", self.dropped, identity.hex()[:12], why
            )
        return None

    def close(self, linger_ms: int = 0):
        with self._outbox_lock:
            boxes = list(self._outboxes.values())
            self._outboxes.clear()
        for box in boxes:
            box.close(linger_ms)
        if self._rejections is not None:
            self.inbox.disable_monitor()
            self._rejections.close()
        self.inbox.close(linger=0)


class Requests:
    """Matches answers to requests by sequence number. Used from the I/O loop (callbacks) and
    from user threads (blocking `call`)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._seq = itertools.count(1)
        self._pending: dict[int, Callable] = {}
        # The head's link (head_link.HeadLink), once there is one: requests to the head are
        # kept until answered, to be sent again to a head that restarted.
        self.link = None
        self._replay: dict[int, tuple] = {}  # seq -> (msg, payload, link generation at send)

    def send(self, address: str, msg, callback: Callable, payload=()) -> int:
        seq = next(self._seq) & 0xFFFFFFFF or next(self._seq)
        self._pending[seq] = callback
        link = self.link
        if link is not None and address == link.address:
            self._replay[seq] = (msg, payload, link.generation)
        self.endpoint.send(address, msg, seq, 0, payload)
        return seq

    def replay(self, address: str, generation: int) -> int:
        """Sends again, with their seqs, the requests to `address` still unanswered that went
        out before link generation `generation` (on a connection that broke); returns how many."""
        count = 0
        for seq, (msg, payload, sent_in) in list(self._replay.items()):
            if sent_in < generation and seq in self._pending:
                self._replay[seq] = (msg, payload, generation)
                self.endpoint.send(address, msg, seq, 0, payload)
                count += 1
        return count

    def fail_replayable(self, error: Exception, keep: int = 0):
        """Fails every request kept for replay but `keep` (the head did not come back in
        time; a blocking `call` raises `error`'s type)."""
        for seq in list(self._replay):
            if seq == keep:
                continue
            self._replay.pop(seq, None)
            callback = self._pending.pop(seq, None)
            if callback is not None:
                callback(P.Error(type(error).__name__, str(error)), ())

    def call(self, address: str, msg, timeout: float, payload=()):
        """Blocking request from a thread that is not the I/O loop."""
        done = threading.Event()
        box = []

        def on_reply(reply, reply_payload):
            box.append((reply, reply_payload))
            done.set()

        seq = self.send(address, msg, on_reply, payload)
        link = self.link if (self.link is not None and address == self.link.address) else None
        deadline = time.monotonic() + timeout
        while not done.wait(max(0.0, deadline - time.monotonic())):
            # While the head is away, a call to it waits for it to come back (bounded by the
            # link's window), then its own timeout again for the replayed request's answer.
            later = link.wait_deadline(timeout) if link is not None else None
            if later is None or later <= time.monotonic():
                self._pending.pop(seq, None)
                self._replay.pop(seq, None)
                if link is not None and link.down_since:
                    raise link.unavailable(type(msg).__name__)
                raise TimeoutError(
                    f"no answer to {type(msg).__name__} from {address} in {timeout}s"
                )
            deadline = later
        reply = box[0]
        if (
            link is not None
            and isinstance(reply[0], P.Error)
            and reply[0].kind == "HeadUnavailableError"
        ):
            raise link.unavailable(type(msg).__name__)
        return reply

    def forget(self, seq: int):
        self._pending.pop(seq, None)
        self._replay.pop(seq, None)

    def deliver(self, msg, seq: int, payload) -> bool:
        if self._replay:
            self._replay.pop(seq, None)
        callback = self._pending.pop(seq, None)
        if callback is None:
            return False
        callback(msg, payload)
        return True

    def fail_all(self, error: Exception):
        self._replay = {}
        pending, self._pending = self._pending, {}
        for callback in pending.values():
            callback(P.Error(type(error).__name__, str(error)), ())
