"""One ray:// client's session: a zray driver, on the head's machine, acting for that client.

The client server starts one per client (`python -m zray.util.client.server.session`), as
Ray's proxier starts a SpecificServer. Its core worker owns what the client creates, so the
cluster only ever talks to this process; the client's stand-in refs and handles name the
real ones held here (`held`, counted per hand-out and given back by the client's `release`).
When the session ends (the client's shutdown, or its grace period passed) the process exits
and the cluster frees its objects and non-detached actors as for any driver that exits.

Each request runs on a thread of its own pool (a `get` may block for long). Replies are kept
until the client acknowledges them, so a request sent again after a reconnection is answered
from here, never run twice.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import logging
import os
import sys
import threading

import zray
from zray._private.core import runtime
from zray._private.wire import protocol as P
from zray._private.wire.security import Credentials
from zray.actor import ActorClass, ActorHandle
from zray.object_ref import ObjectRef
from zray.remote_function import RemoteFunction
from zray.util.client import pickling
from zray.util.client.channel import Channel, split

logger = logging.getLogger(__name__)

# What the client's "api" request may call: the API functions whose arguments and results
# are plain values, refs and handles.
_API = {
    "get": zray.get,
    "put": zray.put,
    "cancel": zray.cancel,
    "kill": zray.kill,
    "get_actor": zray.get_actor,
    "nodes": zray.nodes,
    "cluster_resources": zray.cluster_resources,
    "available_resources": zray.available_resources,
    "list_named_actors": zray.util.list_named_actors,
    "placement_group": zray.util.placement_group,
    "remove_placement_group": zray.util.remove_placement_group,
    "get_placement_group": zray.util.get_placement_group,
    "placement_group_table": zray.util.placement_group_table,
    "placement_group_ready": lambda group: group.ready(),
    "placement_group_wait": lambda group, timeout: group.wait(timeout),
}


_SUBMISSIONS = frozenset({"task", "actor_call"})
_PENDING_WAIT_S = 300.0  # a submission waits at most for room in the store (~20 s)


class _SessionPickler(pickling.Pickler):
    def __init__(self, stream, buffers: list, session: "Session"):
        super().__init__(stream, buffers)
        self._session = session

    def persistent_id(self, obj):
        if type(obj) is ObjectRef:
            self._session.hand_out(("ref", obj._id), obj)
            return ("ref", obj._id)
        if isinstance(obj, ActorHandle):
            self._session.hand_out(("actor", obj._actor_id), obj)
            return ("actor", obj._actor_id, obj._class_name, obj._methods)
        if isinstance(obj, zray.ObjectRefGenerator):
            raise NotImplementedError(
                "generators (ObjectRefGenerator) cannot be passed through a ray:// client "
                "connection in zray"
            )
        return None


class _SessionUnpickler(pickling.Unpickler):
    def __init__(self, stream, buffers: list, session: "Session"):
        super().__init__(stream, buffers)
        self._session = session

    def persistent_load(self, pid):
        if pid[0] == "pending":
            return self._session.result_of(pid[1], pid[2])
        entry = self._session.held.get(tuple(pid[:2]))
        if entry is None:
            raise ValueError(
                f"{pid[0]} {pid[1].hex()} is not held by this ray:// session (released, or "
                "from another connection)"
            )
        return entry[0]


class Session:
    def __init__(self, proxy_address: str, session_id: bytes, creds: Credentials, head: str):
        self.head_address = head
        self.held: dict = {}  # ("ref" | "actor", id) -> [ref or handle, hand-outs]
        self._definitions: dict = {}
        self._lock = threading.Lock()
        self._done: dict = {}  # seq -> reply messages, until the client acknowledges them
        self._running: set = set()
        # Tasks and actor calls, submitted in the client's order (an actor runs its calls in
        # submission order), and what each returned, for later requests that name it.
        self._finished: dict = {}  # seq -> Event, set once _outcomes has the seq
        self._outcomes: dict = {}  # seq -> (ok, refs or exception)
        self._submitter = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="zray-client-submit"
        )
        self._pool = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="zray-client")
        self.ended = threading.Event()
        self.end_reason = ""
        self.channel = Channel(
            proxy_address,
            session_id,
            creds,
            self._on_message,
            on_connected=self._on_connected,
            name="zray-client-session",
        )
        self.channel.start()

    def hand_out(self, key: tuple, obj):
        with self._lock:
            entry = self.held.get(key)
            if entry is None:
                self.held[key] = [obj, 1]
            else:
                entry[1] += 1

    # ------------------------------------------------------------------ I/O thread

    def _on_connected(self):
        self.channel.send([P.encode(P.ClientHeartbeat(0))])  # ready: the server sends requests

    def _on_message(self, record, payload):
        if isinstance(record, P.ClientSessionEnded):
            self.end_reason = record.reason
            self.ended.set()
            return
        if isinstance(record, P.ClientHeartbeat):
            with self._lock:
                self._forget_below(record.acked)
            return
        if not isinstance(record, P.ClientRequest):
            return
        with self._lock:
            self._forget_below(record.acked)
            cached = self._done.get(record.seq)
            if cached is None:
                if record.seq in self._running:
                    return  # sent again after a reconnection: answered once it is done
                self._running.add(record.seq)
                if record.op in _SUBMISSIONS:
                    self._finished[record.seq] = threading.Event()
        if cached is not None:
            self.channel.send(cached)
            return
        executor = self._submitter if record.op in _SUBMISSIONS else self._pool
        executor.submit(self._serve, record, payload)

    def _forget_below(self, acked: int):
        for table in (self._done, self._outcomes, self._finished):
            for seq in [s for s in table if s < acked]:
                del table[seq]

    def result_of(self, seq: int, index: int):
        """Result `index` of the task or actor call the client sent as request `seq` (the
        client named it before it had the answer)."""
        with self._lock:
            finished = self._finished.get(seq)
        if finished is None:
            raise ValueError(f"ray:// request {seq} is not a call this session knows")
        if not finished.wait(_PENDING_WAIT_S):
            raise TimeoutError(f"ray:// call {seq} was not submitted within {_PENDING_WAIT_S}s")
        with self._lock:
            ok, value = self._outcomes[seq]
        if not ok:
            raise value
        refs = value if isinstance(value, list) else [value]
        return refs[index]

    # ------------------------------------------------------------------ request threads

    def _serve(self, request, payload):
        handler = getattr(self, "_op_" + request.op, None)
        try:
            if handler is None:
                raise ValueError(f"unknown ray:// request {request.op!r}")
            result, ok = handler(pickling.loads(_SessionUnpickler, payload, self)), True
        except BaseException as exc:
            result, ok = exc, False
        try:
            frames = pickling.dumps(_SessionPickler, result, self)
        except Exception as exc:
            ok = False
            frames = pickling.dumps(
                _SessionPickler,
                TypeError(f"the result of {request.op} cannot be pickled: {exc}"),
                self,
            )
        messages = split(P.ClientReply(request.seq, ok, []), frames)
        with self._lock:
            self._running.discard(request.seq)
            self._done[request.seq] = messages
            finished = self._finished.get(request.seq)
            if finished is not None:
                self._outcomes[request.seq] = (ok, result)
                finished.set()
        try:
            self.channel.send(messages)
        except ConnectionError:
            pass  # the session is closing
        if request.op == "disconnect":
            self.end_reason = "the client disconnected"
            self.ended.set()

    def _op_init(self, args: dict):
        if runtime.core is None:
            zray.init(
                address=self.head_address,
                namespace=args.get("namespace"),
                log_to_driver=False,
                configure_logging=False,
            )
        core = runtime.core
        if args.get("log_to_driver", True):
            core._log_sink = self._forward_lines
        return {
            "job_id": core.job_id,
            "node_id": core.node_id,
            "worker_id": core.worker_id,
            "namespace": core.current_namespace(),
            "head_address": core.head_address,
            "session_dir": core.session_dir,
            "runtime_env": dict(core.runtime_env),
        }

    def _forward_lines(self, msg):
        """Worker output for this driver goes on to the client (lost while it is away)."""
        try:
            self.channel.send([P.encode(P.ClientLogLines(msg.stream, msg.prefix, msg.lines))])
        except ConnectionError:
            pass  # the session is closing

    def _op_job_runtime_env(self, env: dict):
        from zray._private.common import runtime_env as RE

        runtime.core.runtime_env = RE.parse(env)
        return dict(runtime.core.runtime_env)

    def _op_upload(self, args):
        from zray._private.common import packaging

        uri, data = args
        data = bytes(data)
        digest = hashlib.sha1(data).hexdigest()[:16]
        if not uri.startswith(f"gcs://_ray_pkg_{digest}."):
            raise ValueError(f"package {uri} does not match its content")
        packaging.store_package(runtime.core, uri, data, uri)
        return None

    def _definition(self, key: bytes, pickled, make):
        with self._lock:
            made = self._definitions.get(key)
        if made is None:
            if pickled is None:
                raise ValueError("a ray:// definition the session never received")
            from zray._private.common import definitions

            made = make(definitions.loads(pickled), {})
            with self._lock:
                self._definitions[key] = made
        return made

    def _op_task(self, args):
        key, pickled, options, call_args, call_kwargs = args
        function = self._definition(key, pickled, RemoteFunction)
        target = function.options(**options) if options else function
        return target.remote(*call_args, **call_kwargs)

    def _op_actor(self, args):
        key, pickled, options, call_args, call_kwargs = args
        actor_class = self._definition(key, pickled, ActorClass)
        target = actor_class.options(**options) if options else actor_class
        return target.remote(*call_args, **call_kwargs)

    def _op_actor_call(self, args):
        handle, name, options, call_args, call_kwargs = args
        method = getattr(handle, name)
        if options:
            method = method.options(**options)
        return method.remote(*call_args, **call_kwargs)

    def _op_api(self, args):
        name, call_args, call_kwargs = args
        function = _API.get(name)
        if function is None:
            raise ValueError(f"{name} is not available through a ray:// connection")
        return function(*call_args, **call_kwargs)

    def _op_wait(self, args):
        refs, num_returns, timeout, fetch_local = args
        ready, _ = zray.wait(
            refs, num_returns=num_returns, timeout=timeout, fetch_local=fetch_local
        )
        return [ref._id for ref in ready]

    def _op_release(self, keys: list):
        dropped = []  # the refs and handles die after the lock: their __del__ sends
        with self._lock:
            for key in keys:
                key = tuple(key)
                entry = self.held.get(key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        dropped.append(self.held.pop(key))
        del dropped
        return None

    def _op_stats(self, _):
        """What the session holds for its client (tests check that released refs go)."""
        with self._lock:
            return {"held": len(self.held), "replies_kept": len(self._done), "pid": os.getpid()}

    def _op_disconnect(self, _):
        return None

    def close(self):
        self._submitter.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self.held.clear()
            self._done.clear()
            self._outcomes.clear()
        zray.shutdown()
        self.channel.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one ray:// client's session (internal)")
    parser.add_argument("--proxy", required=True, help="the client server's ipc address")
    parser.add_argument("--session-id", required=True, help="hex")
    parser.add_argument("--head-address", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    session = Session(
        args.proxy,
        bytes.fromhex(args.session_id),
        Credentials.from_config(),
        args.head_address,
    )
    parent = os.getppid()
    # Ends when told, when the client leaves, or when the client server is gone.
    while not session.ended.wait(1.0):
        if os.getppid() != parent:
            session.end_reason = "the client server exited"
            break
    logger.info("session ends: %s", session.end_reason)
    session.close()
    logging.shutdown()
    # A request thread may still block in a get of the program's: nothing of it is wanted now,
    # and the interpreter's exit would wait for that thread.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
