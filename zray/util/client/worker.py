"""The client side of ray://: what `zray.api` dispatches to after `init("ray://host:port")`.

The program runs no core worker. Every call becomes a request to this client's session on the
head's client server (zray/util/client/server/), whose core worker owns the client's objects
and actors on its behalf. ObjectRefs and actor handles here are stand-ins naming the session's
real ones; when the last stand-in of one dies, the session is told to drop its copy.

Requests are numbered. A request stays pending, with its messages and the stand-ins its
arguments name, until its reply arrives; when the connection breaks and comes back (ZeroMQ
reconnects by itself) every pending request is sent again, and the session answers a resent
one from the replies it keeps (or, still running, answers it once done). The session survives
`client_reconnect_grace_period` seconds without hearing from us; so does this client without
hearing from the server, then it fails every pending call with ConnectionError.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import sys
import threading
import time

from zray._config import config
from zray._private.wire import protocol as P
from zray.object_ref import ObjectRef
from zray.util.client import pickling
from zray.util.client.channel import Channel, split

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
CONNECT_TIMEOUT_S = 120.0  # a session process starts and joins the cluster first


_ID_SLOT = ObjectRef._id  # ObjectRef's slot, under the property that may wait for it


class ClientObjectRef(ObjectRef):
    """An ObjectRef held through a ray:// connection (an instance of zray.ObjectRef).

    A task's or actor call's result is returned before the session has answered the call:
    until then it is `_pending` (the call's _PendingCall and the result's index), and using
    its id waits for the answer. Passed into another request meanwhile, it travels as
    ("pending", call seq, index), which the session resolves itself: `get(f.remote())` is
    one round trip."""

    __slots__ = ("_worker", "_pending")

    def __init__(self, binary: bytes | None, worker: "ClientWorker", pending=None):
        if binary is not None:
            _ID_SLOT.__set__(self, binary)
        self._owner = ""
        self._worker = worker
        self._pending = pending

    @property  # type: ignore[override]
    def _id(self) -> bytes:
        try:
            return _ID_SLOT.__get__(self, ClientObjectRef)
        except AttributeError:
            call, index = self._pending
            binary = call.result_ref(index)._id
            _ID_SLOT.__set__(self, binary)
            return binary

    def __del__(self):
        worker = getattr(self, "_worker", None)
        if worker is not None and getattr(self, "_pending", None) is None:
            worker.release(("ref", self._id))  # a pending ref's answer holds the hand-out

    def __reduce__(self):
        raise TypeError(
            "a ray:// client's ObjectRef can only be pickled into the arguments of a task, an "
            "actor call or put()"
        )

    def future(self) -> concurrent.futures.Future:
        return self._worker.future_of(self)


class ClientActorHandle:
    """A handle to an actor, held through a ray:// connection."""

    def __init__(self, actor_id: bytes, class_name: str, methods: dict, worker: "ClientWorker"):
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._worker = worker

    def __del__(self):
        worker = self.__dict__.get("_worker")
        if worker is not None:
            worker.release(("actor", self._actor_id))

    def __getattr__(self, name):
        methods = self.__dict__.get("_methods", {})
        if name in methods or name in ("__ray_terminate__", "__ray_ready__"):
            return ClientActorMethod(self, name, {})
        raise AttributeError(
            f"'{self.__dict__.get('_class_name')}' object has no attribute '{name}'"
        )

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __hash__(self):
        return hash(self._actor_id)

    def __eq__(self, other):
        return isinstance(other, ClientActorHandle) and other._actor_id == self._actor_id

    @property
    def _ray_actor_id(self):
        from zray._private.common.id_types import ActorID

        return ActorID(self._actor_id)

    def __reduce__(self):
        raise TypeError(
            "a ray:// client's actor handle can only be pickled into the arguments of a task, "
            "an actor call or put()"
        )


class ClientActorMethod:
    def __init__(self, handle: ClientActorHandle, name: str, options: dict):
        self._handle = handle
        self._name = name
        self._options = options

    def __call__(self, *args, **kwargs):
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running "
            f"'object.{self._name}()', try 'object.{self._name}.remote()'."
        )

    def options(self, **options):
        return ClientActorMethod(self._handle, self._name, dict(self._options, **options))

    def remote(self, *args, **kwargs):
        handle = self._handle
        defaults = handle._methods.get(self._name, {})
        num_returns = self._options.get("num_returns", defaults.get("num_returns", 1))
        _refuse_streaming(num_returns)
        return handle._worker.submit(
            "actor_call", (handle, self._name, self._options, args, kwargs), num_returns
        )


def _refuse_streaming(num_returns):
    if num_returns in ("streaming", "dynamic"):
        raise NotImplementedError(
            f"num_returns={num_returns!r} (generators) is not supported through a ray:// "
            "client connection in zray"
        )


class _ClientPickler(pickling.Pickler):
    def __init__(self, stream, buffers: list, held: list, awaited: list):
        super().__init__(stream, buffers)
        self._held = held
        self._awaited = awaited

    def persistent_id(self, obj):
        if isinstance(obj, ClientObjectRef):
            self._held.append(obj)  # the session keeps its ref while the request is pending
            pending = obj._pending
            if pending is not None and not pending[0].answered():
                self._awaited.append(pending[0].seq)
                return ("pending", pending[0].seq, pending[1])
            return ("ref", obj._id)
        if isinstance(obj, ClientActorHandle):
            self._held.append(obj)
            return ("actor", obj._actor_id)
        if isinstance(obj, ObjectRef):
            raise TypeError(f"{obj!r} does not belong to this ray:// connection")
        return None


class _ClientUnpickler(pickling.Unpickler):
    def __init__(self, stream, buffers: list, worker: "ClientWorker"):
        super().__init__(stream, buffers)
        self._worker = worker

    def persistent_load(self, pid):
        if pid[0] == "ref":
            return ClientObjectRef(pid[1], self._worker)
        if pid[0] == "actor":
            return ClientActorHandle(pid[1], pid[2], pid[3], self._worker)
        raise pickle_error(pid)


def pickle_error(pid):
    import pickle

    return pickle.UnpicklingError(f"unknown persistent id {pid!r}")


class _Pending:
    __slots__ = ("messages", "future", "held", "awaited")

    def __init__(self, messages, future, held, awaited):
        self.messages = messages
        self.future = future
        self.held = held
        self.awaited = awaited  # seqs of the earlier calls whose results this one names


class _PendingCall:
    """A submitted task or actor call whose answer (its result refs) may still be on its way.
    The answer is unpickled on arrival (on the I/O thread), so the session's hand-outs are
    counted and given back like any other."""

    def __init__(self, worker: "ClientWorker", seq: int, on_success=None):
        self.worker = worker
        self.seq = seq
        self._on_success = on_success
        self._done = threading.Event()
        self._refs: list = []
        self._error: BaseException | None = None

    def answered(self) -> bool:
        return self._done.is_set()

    def on_answer(self, future: concurrent.futures.Future):
        try:
            ok, frames = future.result()
            result = pickling.loads(_ClientUnpickler, frames, self.worker)
            if not ok:
                raise result
            self._refs = result if isinstance(result, list) else [result]
            if self._on_success is not None:
                self._on_success()
        except BaseException as exc:
            self._error = exc
        self._done.set()

    def result_ref(self, index: int) -> "ClientObjectRef":
        self._done.wait()  # the connection's end fails the future, so this ends
        if self._error is not None:
            raise self._error
        return self._refs[index]


class ClientWorker:
    def __init__(self, address: str, creds, grace_period_s: float):
        self.address = address
        self.session_id = os.urandom(16)
        self._grace = grace_period_s
        self._lock = threading.Lock()
        self._pending: dict = {}  # seq -> _Pending, in seq order
        self._awaited: dict = {}  # seq of an earlier call -> requests in flight naming it
        self._next_seq = 1
        self._releases: list = []
        self._ended: str | None = None
        self._last_heard = time.monotonic()
        self._next_heartbeat = 0.0
        self._connections = 0
        # Heartbeats (and the grace period) start once the session exists: before its init
        # is answered, the client server knows no session to keep, and starting one may
        # take long on a busy head.
        self.established = False
        self._sent_definitions: set = set()
        self._futures = None
        self.info: dict = {}
        self.channel = Channel(
            address,
            self.session_id,
            creds,
            self._on_message,
            self._on_connected,
            self._on_tick,
        )
        self.channel.start()

    # ------------------------------------------------------------------ requests

    def request(self, op: str, value, timeout: float | None = None):
        future = self.request_async(op, value)
        try:
            ok, frames = future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ConnectionError(
                f"the ray:// server at {self.address} did not answer {op} within {timeout}s"
            ) from None
        result = pickling.loads(_ClientUnpickler, frames, self)
        if not ok:
            raise result
        return result

    def request_async(self, op: str, value, answered=None) -> concurrent.futures.Future:
        """Sends a request. `answered(seq)`, if given, returns a callback that runs (on the I/O
        thread) with the answered future before anyone waiting on it wakes."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        while True:
            held: list = []
            awaited: list = []
            frames = pickling.dumps(_ClientPickler, value, held, awaited)
            self._lock.acquire()
            # A call named as pending may have been answered while we pickled; once it is,
            # the next ack lets the session forget it, so it must travel as its result ref.
            if all(earlier in self._pending for earlier in awaited):
                break
            self._lock.release()
        try:
            if self._ended is not None:
                raise ConnectionError(self._ended)
            seq = self._next_seq
            self._next_seq += 1
            if answered is not None:
                future.add_done_callback(answered(seq))
            for earlier in awaited:
                self._awaited[earlier] = self._awaited.get(earlier, 0) + 1
            messages = split(P.ClientRequest(seq, op, self._acked(), []), frames)
            self._pending[seq] = _Pending(messages, future, held, awaited)
        finally:
            self._lock.release()
        self.channel.send(messages)
        return future

    def _acked(self) -> int:
        """Every answer below this arrived and no request in flight names one of them: the
        session may forget them."""
        floor = next(iter(self._pending)) if self._pending else self._next_seq
        return min(floor, min(self._awaited)) if self._awaited else floor

    def submit(self, op: str, value, num_returns, on_success=None):
        """A task or actor call, returned before it is answered (see ClientObjectRef)."""
        if not isinstance(num_returns, int) or isinstance(num_returns, bool) or num_returns < 0:
            raise ValueError(f"num_returns={num_returns!r} is not supported")
        calls: list = []

        def answered(seq):
            calls.append(_PendingCall(self, seq, on_success))
            return calls[0].on_answer

        self.request_async(op, value, answered)
        refs = [ClientObjectRef(None, self, (calls[0], i)) for i in range(num_returns)]
        return refs[0] if num_returns == 1 else refs

    def call(self, op: str, value):
        return self.request(op, value)

    def release(self, key: tuple):
        self._releases.append(key)  # list.append is atomic: __del__ may run on any thread

    # ------------------------------------------------------------------ I/O thread

    def _on_message(self, record, payload):
        self._last_heard = time.monotonic()
        if isinstance(record, P.ClientReply):
            with self._lock:
                entry = self._pending.pop(record.seq, None)
                for earlier in entry.awaited if entry is not None else ():
                    left = self._awaited.pop(earlier) - 1
                    if left:
                        self._awaited[earlier] = left
                # Under the lock, so "not in _pending" means "answered" to request_async:
                # a call's _PendingCall learns its result in the future's callback.
                if entry is not None:
                    entry.future.set_result((record.ok, payload))
        elif isinstance(record, P.ClientLogLines):
            stream = sys.stderr if record.stream == "stderr" else sys.stdout
            try:
                stream.write("".join(f"{record.prefix} {line}\n" for line in record.lines))
                stream.flush()
            except (ValueError, OSError):
                pass  # the program's stream was closed (interpreter exit)
        elif isinstance(record, P.ClientSessionEnded):
            self._end(f"the ray:// session at {self.address} ended: {record.reason}")

    def _on_connected(self):
        self._connections += 1
        self._last_heard = time.monotonic()
        if self._connections == 1:
            return
        logger.info("reconnected to %s: resending %d requests", self.address, len(self._pending))
        with self._lock:
            pending = [self._pending[seq] for seq in sorted(self._pending)]
        for entry in pending:
            self.channel.send(entry.messages)

    def _on_tick(self):
        now = time.monotonic()
        if self._ended is not None or not self.established:
            return
        if now - self._last_heard > self._grace:
            self._end(
                f"lost the connection to the ray:// server at {self.address} for more than "
                f"{self._grace:g}s (client_reconnect_grace_period)"
            )
            return
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_S
            with self._lock:
                acked = self._acked()
            self.channel.send([P.encode(P.ClientHeartbeat(acked))])
        if self._releases:
            releases, self._releases = self._releases, []
            try:
                self.request_async("release", releases)
            except ConnectionError:
                pass  # shutdown() raced us: the session gives everything back as it ends

    def _end(self, reason: str):
        with self._lock:
            if self._ended is not None:
                return
            self._ended = reason
            pending, self._pending = self._pending, {}
        error = ConnectionError(reason)
        for entry in pending.values():
            entry.future.set_exception(error)

    # ------------------------------------------------------------------ the API

    def definition_key(self, target, kind: str) -> tuple:
        """(key, pickled definition or None once the session has it)."""
        cached = getattr(target, "_client_definition", None)
        if cached is None:
            from zray._private.common import definitions

            pickled = definitions.dumps(target._function if kind == "f" else target._cls)
            cached = (hashlib.sha1(pickled).digest(), pickled)
            target._client_definition = cached
        key, pickled = cached
        if key in self._sent_definitions:
            return key, None
        return key, pickled

    def submit_task(self, remote_function, args, kwargs, options):
        _refuse_streaming(options.get("num_returns"))
        if remote_function._is_generator and options.get("num_returns") is None:
            _refuse_streaming("streaming")
        key, pickled = self.definition_key(remote_function, "f")
        options = self.upload_runtime_env(options)
        num_returns = options.get("num_returns")
        # The definition goes with each call until one answer says the session has it.
        return self.submit(
            "task",
            (key, pickled, options, args, kwargs),
            1 if num_returns is None else num_returns,
            on_success=None if pickled is None else lambda: self._sent_definitions.add(key),
        )

    def create_actor(self, actor_class, args, kwargs, options):
        key, pickled = self.definition_key(actor_class, "c")
        options = self.upload_runtime_env(options)
        result = self.request("actor", (key, pickled, options, args, kwargs))
        self._sent_definitions.add(key)
        return result

    def upload_runtime_env(self, options: dict) -> dict:
        env = options.get("runtime_env")
        if not env:
            return options
        return dict(options, runtime_env=self.upload_env(env))

    def upload_env(self, env) -> dict:
        """`env` with its local working_dir and py_modules packed here and uploaded through
        the connection: the cluster cannot read this machine's files."""
        from zray._private.common import packaging
        from zray._private.common import runtime_env as RE
        from zray._private.common.runtime_env import PACKAGE_SCHEME

        env = RE.parse(env)
        excludes = env.get("excludes") or []

        def store(path: str, include_parent: bool) -> str:
            if path.startswith(PACKAGE_SCHEME):
                return path
            uri, data = packaging.package_of(path, excludes, include_parent)
            self.request("upload", (uri, data))
            return uri

        if "working_dir" in env:
            env["working_dir"] = store(env["working_dir"], include_parent=False)
        if "py_modules" in env:
            env["py_modules"] = [
                store(m, include_parent=os.path.isdir(m)) for m in env["py_modules"]
            ]
        return env

    def api(self, name: str, *args, **kwargs):
        return self.request("api", (name, args, kwargs))

    def wait(self, refs, num_returns, timeout, fetch_local):
        ready_ids = self.request("wait", (refs, num_returns, timeout, fetch_local))
        ready_set = set(ready_ids)
        ready = [r for r in refs if r._id in ready_set]
        return ready, [r for r in refs if r._id not in ready_set]

    def future_of(self, ref) -> concurrent.futures.Future:
        with self._lock:
            if self._futures is None:
                self._futures = concurrent.futures.ThreadPoolExecutor(
                    4, thread_name_prefix="zray-client-future"
                )
        return self._futures.submit(lambda: self.api("get", ref))

    def disconnect(self):
        try:
            if self._ended is None:
                self.request("disconnect", None, timeout=10)
        except (ConnectionError, OSError):
            pass
        finally:
            self._end("disconnected by shutdown()")  # fails calls other threads still wait on
            self.channel.close()
            if self._futures is not None:
                self._futures.shutdown(wait=False)


def connect(address: str, namespace, runtime_env, creds, log_to_driver: bool) -> ClientWorker:
    worker = ClientWorker(address, creds, config.client_reconnect_grace_period)
    try:
        worker.info = worker.request(
            "init",
            {"namespace": namespace, "pid": os.getpid(), "log_to_driver": log_to_driver},
            timeout=CONNECT_TIMEOUT_S,
        )
        worker._last_heard = time.monotonic()
        worker.established = True
        if runtime_env:
            worker.info["runtime_env"] = worker.request(
                "job_runtime_env", worker.upload_env(runtime_env)
            )
    except BaseException:
        worker.channel.close()
        raise
    return worker
