"""The client server: `zray start --head --ray-client-server-port=PORT` runs it beside the head
node, in a process of its own so the head's loop never carries a client's bytes.

It listens on PORT (all interfaces, as Ray's does) with the cluster's ZeroMQ security: a
client proves the token in the handshake like any other member. Each client's first request
("init") starts a session process (`session.py`), a zray driver acting for that client, which
connects back here over an ipc socket. From then on this process only moves messages: a
client's messages to its session and the session's to the client, by the client's routing id,
zero-copy. It answers heartbeats itself, ends a session whose client was silent for the
reconnect grace period, and answers a client whose session is gone with ClientSessionEnded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import time

import zmq

from zray._config import config, environment_for_children
from zray._fast import unpack_header
from zray._private.common.launch import module_command
from zray._private.wire import protocol as P
from zray._private.wire.security import Credentials, RejectionCounter, ZapHandler

logger = logging.getLogger(__name__)

_CODE_REQUEST = P.ClientRequest.CODE
_CODE_HEARTBEAT = P.ClientHeartbeat.CODE
_SESSION_STOP_S = 10.0  # a session told to end gets this long before SIGKILL


class _Session:
    __slots__ = ("process", "last_heard", "backlog", "ready", "stopping_since")

    def __init__(self, process):
        self.process = process
        self.last_heard = time.monotonic()
        self.backlog: list = []
        self.ready = False
        self.stopping_since = None


class ClientServer:
    def __init__(
        self,
        host: str,
        port: int,
        head_address: str,
        session_dir: str,
        creds: Credentials,
        grace_period_s: float,
    ):
        self.head_address = head_address
        self.creds = creds
        self.grace = grace_period_s
        self.ctx = zmq.Context()
        self.zap = ZapHandler(self.ctx, creds)
        self.front = self._router()
        self.front.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client takes its id back
        self.rejections = RejectionCounter(self.front, "client server")
        self.front.bind(f"tcp://{host}:{port}")
        self.back = self._router()
        sockets = os.path.join(session_dir, "sockets")
        os.makedirs(sockets, exist_ok=True)
        self.back_address = f"ipc://{sockets}/client-server-{os.getpid()}"
        self.back.bind(self.back_address)
        self.sessions: dict = {}
        self.stopped = False
        self.log_rotation = None  # of client_server.log, when it logs there

    def _router(self):
        sock = self.ctx.socket(zmq.ROUTER)
        self.creds.serve(sock)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        return sock

    # ------------------------------------------------------------------ loop

    def run(self, node_pid: int | None = None):
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        poller.register(self.rejections.socket, zmq.POLLIN)
        next_check = time.monotonic() + 1.0
        while not self.stopped:
            ready = dict(poller.poll(200))
            if self.front in ready:
                self._from_clients()
            if self.back in ready:
                self._from_sessions()
            if self.rejections.socket in ready:
                self.rejections.read()
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1.0
                if self.log_rotation is not None:
                    self.log_rotation.tick(time.monotonic())
                self._check_sessions()
                if node_pid is not None and not _alive(node_pid):
                    logger.info("the head node (pid %d) exited: stopping", node_pid)
                    break
        self.close()

    def _from_clients(self):
        while True:
            try:
                frames = self.front.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) < 3:
                continue
            identity = frames[0].bytes
            try:
                code = unpack_header(frames[1].buffer)[1]
            except ValueError:
                continue
            session = self.sessions.get(identity)
            if code == _CODE_HEARTBEAT:
                if session is not None:
                    session.last_heard = time.monotonic()
                    self.front.send_multipart([identity] + frames[1:], copy=False)
                    self._to_session(identity, session, frames[1:])
                else:
                    self._ended(identity, "no such session (it ended or its grace period passed)")
                continue
            if session is None:
                if code == _CODE_REQUEST and self._is_init(frames):
                    session = self._start_session(identity)
                    if session is None:
                        continue
                else:
                    self._ended(identity, "no such session (it ended or its grace period passed)")
                    continue
            if session.stopping_since is not None:
                continue
            session.last_heard = time.monotonic()
            self._to_session(identity, session, frames[1:])

    def _is_init(self, frames) -> bool:
        try:
            record, _, _ = P.decode(frames[1].buffer, frames[2].buffer)
        except P.ProtocolError:
            return False
        return isinstance(record, P.ClientRequest) and record.op == "init"

    def _to_session(self, identity: bytes, session: _Session, frames: list):
        if session.ready:
            self.back.send_multipart([identity] + frames, copy=False)
        else:
            session.backlog.append(frames)

    def _from_sessions(self):
        while True:
            try:
                frames = self.back.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            session = self.sessions.get(identity)
            if session is None or len(frames) < 3:
                continue
            if not session.ready:  # its first message: ready for requests
                session.ready = True
                for backlog in session.backlog:
                    self.back.send_multipart([identity] + backlog, copy=False)
                session.backlog = []
                continue
            self.front.send_multipart(frames, copy=False)

    def _ended(self, identity: bytes, reason: str):
        self.front.send_multipart([identity] + P.encode(P.ClientSessionEnded(reason)))

    # ------------------------------------------------------------------ sessions

    def _start_session(self, identity: bytes) -> _Session | None:
        cmd = module_command("zray.util.client.server.session") + [
            "--proxy",
            self.back_address,
            "--session-id",
            identity.hex(),
            "--head-address",
            self.head_address,
        ]
        env = environment_for_children({"ZRAY_TOKEN": self.creds.token})
        if self.creds.encrypt:
            env["ZRAY_ENCRYPT"] = "1"
        try:
            process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            logger.error("could not start a ray:// session: %s", exc)
            self._ended(identity, f"the client server could not start a session: {exc}")
            return None
        session = _Session(process)
        self.sessions[identity] = session
        logger.info("session %s started (pid %d)", identity.hex()[:12], process.pid)
        return session

    def _check_sessions(self):
        now = time.monotonic()
        for identity, session in list(self.sessions.items()):
            code = session.process.poll()
            if code is not None:
                del self.sessions[identity]
                logger.info("session %s ended (exit %s)", identity.hex()[:12], code)
                self._ended(identity, "the session ended")
                continue
            if session.stopping_since is None and now - session.last_heard > self.grace:
                logger.info(
                    "session %s: no word from its client for %.0fs: ending it",
                    identity.hex()[:12],
                    self.grace,
                )
                self._stop(
                    identity, session, "the client did not reconnect within the grace period"
                )
            elif (
                session.stopping_since is not None
                and now - session.stopping_since > _SESSION_STOP_S
            ):
                session.process.kill()

    def _stop(self, identity: bytes, session: _Session, reason: str):
        session.stopping_since = time.monotonic()
        if session.ready:
            self.back.send_multipart([identity] + P.encode(P.ClientSessionEnded(reason)))
        else:
            session.process.terminate()

    def close(self):
        for identity, session in list(self.sessions.items()):
            if session.stopping_since is None:
                self._stop(identity, session, "the client server is stopping")
        deadline = time.monotonic() + _SESSION_STOP_S
        for session in self.sessions.values():
            try:
                session.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                session.process.kill()
                session.process.wait()
        self.sessions.clear()
        self.rejections.close()
        self.front.close(linger=0)
        self.back.close(linger=0)
        self.ctx.term()


def _alive(pid: int) -> bool:
    from zray._private.common.session import _pid_alive

    return _pid_alive(pid)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="zray's Ray Client server (ray://)")
    parser.add_argument("--port", type=int, default=10001)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--address", required=True, help="the head's host:port")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--node-pid", type=int, default=None, help="exit when it exits")
    parser.add_argument("--ready-json", action="store_true")
    parser.add_argument("--log-file", help="its stderr, to rotate")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from zray._private.wire import security

    token = config.token or security.read_token(args.session_dir)
    encrypt = config.encrypt or bool(security.read_cluster_info(args.session_dir).get("encrypt"))
    server = ClientServer(
        args.host,
        args.port,
        args.address,
        args.session_dir,
        Credentials(token, encrypt),
        config.client_reconnect_grace_period,
    )

    if args.log_file:  # rotated with Ray's variables (common/log_rotation.py)
        from zray._private.common import log_rotation

        server.log_rotation = log_rotation.RotatingStderr(args.log_file, *log_rotation.settings())

    def stop(*_):
        server.stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(os.path.join(args.session_dir, CLIENT_SERVER_PID_FILE), "w") as f:
        f.write(str(os.getpid()))
    if args.ready_json:
        print(json.dumps({"pid": os.getpid(), "port": args.port}), flush=True)
    try:
        server.run(args.node_pid)
    finally:
        try:
            os.unlink(os.path.join(args.session_dir, CLIENT_SERVER_PID_FILE))
        except FileNotFoundError:
            pass
    return 0


CLIENT_SERVER_PID_FILE = "client_server.pid"
