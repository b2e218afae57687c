"""Ray Client: `zray.init("ray://host:port")` against `zray start --head --ray-client-server-port`.

This test process is the client (its own session root, so it finds no local cluster and holds
the token only through ZRAY_TOKEN as a remote driver would). test_client_netns.py runs a client
in a network namespace of its own, where only the client server's port is reachable.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import numpy as np
import psutil
import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import short_tmp, stopped_on_failure, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT

GRACE_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClientCluster:
    def __init__(self, root: str):
        self.root = root
        self.port = free_port()
        self.env = dict(
            os.environ,
            PYTHONPATH=ROOT,
            ZRAY_SESSION_DIR_ROOT=self.root,
            ZRAY_CLIENT_RECONNECT_GRACE_PERIOD=str(GRACE_S),
        )
        started = zray_cli(
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "2",
            "--ray-client-server-port",
            str(self.port),
            env=self.env,
        )
        assert started.returncode == 0, started.stderr
        assert f"Ray Client server on port {self.port}" in started.stdout
        self.token = token_of(started.stdout)
        self.address = f"ray://127.0.0.1:{self.port}"

    def server_pid(self) -> int:
        for entry in os.listdir(self.root):
            path = os.path.join(self.root, entry, "client_server.pid")
            if os.path.exists(path):
                return int(open(path).read())
        raise AssertionError("no client server running")

    def sessions(self) -> list:
        """The session processes the client server runs now."""
        return [p for p in psutil.Process(self.server_pid()).children() if p.is_running()]

    def stop(self):
        """`zray stop` ends the client server and its sessions with the node."""
        server = psutil.Process(self.server_pid())
        sessions = server.children()
        stopped = zray_cli("stop", env=self.env)
        assert "Stopped 1 zray node" in stopped.stdout, stopped.stdout + stopped.stderr
        for process in [server] + sessions:
            wait_until(lambda: _gone(process), what=f"pid {process.pid} to exit")


@pytest.fixture(scope="module")
def cluster():
    before = (zray_segments(), zray_sessions())
    root = short_tmp()
    with stopped_on_failure(dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)):
        made = ClientCluster(root)
    yield made
    made.stop()
    assert_no_leaks(*before)
    shutil.rmtree(made.root, ignore_errors=True)


@pytest.fixture
def client(cluster, monkeypatch):
    """This process connected as a ray:// client; disconnected (and checked) afterwards."""
    import zray
    from zray._config import config

    monkeypatch.setattr(config, "token", cluster.token)
    zray.init(cluster.address)
    yield zray
    zray.shutdown()
    assert not zray.is_initialized()


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_tasks_objects_and_refs_into_tasks(client):
    ray = client
    from zray.util.client.worker import ClientObjectRef

    assert ray.is_initialized()

    @ray.remote
    def add(a, b):
        return a + b

    @ray.remote
    def total(refs):  # refs nested in a list stay refs: the task gets them itself
        return sum(ray.get(refs))

    ref = add.remote(1, 2)
    assert isinstance(ref, ray.ObjectRef) and isinstance(ref, ClientObjectRef)
    assert ray.get(ref, timeout=30) == 3
    put = ray.put(np.arange(10))
    assert ray.get(add.remote(put, 1), timeout=30).tolist() == list(range(1, 11))
    parts = [ray.put(i) for i in range(5)]
    assert ray.get(total.remote(parts), timeout=30) == 10
    assert ray.get(add.options(num_cpus=0.5).remote(ref, 10), timeout=30) == 13
    first, second = ray.remote(num_returns=2)(lambda: (1, 2)).remote()
    assert ray.get([first, second], timeout=30) == [1, 2]
    # a task returning a ref hands back a ref that works here too
    nested = ray.get(ray.remote(lambda: [ray.put("inner")]).remote(), timeout=30)
    assert ray.get(nested[0], timeout=30) == "inner"


def test_wait_and_timeouts(client):
    ray = client

    @ray.remote
    def sleepy(s):
        time.sleep(s)
        return s

    fast, slow = sleepy.remote(0), sleepy.remote(30)
    ready, not_ready = ray.wait([slow, fast], num_returns=1, timeout=20)
    assert ready == [fast] and not_ready == [slow] and ready[0] is fast
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(slow, timeout=0.2)
    ray.cancel(slow, force=True)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(slow, timeout=30)
    with pytest.raises(ValueError):
        ray.wait([fast, fast])


def test_errors_keep_their_class_and_remote_traceback(client):
    ray = client

    class Custom(Exception):
        pass

    @ray.remote
    def fails():
        raise Custom("boom from the cluster")

    with pytest.raises(Custom) as info:
        ray.get(fails.remote(), timeout=30)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "boom from the cluster" in str(info.value) and "in fails" in str(info.value)

    @ray.remote
    def takes(x):
        return x

    with pytest.raises(Custom):  # the error flows through a dependent task
        ray.get(takes.remote(fails.remote()), timeout=30)


def test_actors_named_get_actor_and_kill(client):
    ray = client

    @ray.remote
    class Counter:
        def __init__(self, start):
            self.n = start

        def inc(self, by=1):
            self.n += by
            return self.n

        @ray.method(num_returns=2)
        def pair(self):
            return self.n, -self.n

        def fail(self):
            raise KeyError("actor error")

    counter = Counter.options(name="client-counter").remote(10)
    assert ray.get(counter.inc.remote(), timeout=30) == 11
    same = ray.get_actor("client-counter")
    assert ray.get(same.inc.remote(by=5), timeout=30) == 16
    assert ray.get(list(counter.pair.remote()), timeout=30) == [16, -16]
    with pytest.raises(KeyError):
        ray.get(counter.fail.remote(), timeout=30)
    assert "client-counter" in ray.util.list_named_actors()

    @ray.remote
    def use(handle):  # a handle passed into a task works there
        return ray.get(handle.inc.remote())

    assert ray.get(use.remote(counter), timeout=30) == 17
    ray.kill(counter)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(counter.inc.remote(), timeout=30)
    wait_until(lambda: "client-counter" not in ray.util.list_named_actors(), what="kill")
    with pytest.raises(ValueError):
        ray.get_actor("client-counter")


def test_cluster_information_and_runtime_context(client):
    ray = client
    assert ray.cluster_resources()["CPU"] == 2.0
    assert set(ray.available_resources()) <= set(ray.cluster_resources())
    nodes = ray.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"]
    context = ray.get_runtime_context()
    assert len(context.get_job_id()) == 8 and context.get_node_id() == nodes[0]["NodeID"]
    assert context.namespace

    @ray.remote
    def job_of_task():
        return ray.get_runtime_context().get_job_id()

    assert ray.get(job_of_task.remote(), timeout=30) == context.get_job_id()
    assert ray.get_gpu_ids() == []


def test_placement_groups_through_the_client(client):
    ray = client
    from zray.util.placement_group import (
        get_placement_group,
        placement_group,
        placement_group_table,
        remove_placement_group,
    )
    from zray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = placement_group([{"CPU": 1}], strategy="PACK", name="client-group")
    assert ray.get(group.ready(), timeout=30) == group
    assert group.wait(10) and group.bundle_specs == [{"CPU": 1.0}]
    assert placement_group_table(group)["state"] == "CREATED"
    assert get_placement_group("client-group") == group

    @ray.remote(num_cpus=1)
    def placed():
        from zray.util import get_current_placement_group

        return get_current_placement_group().id.hex()

    strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0)
    assert ray.get(placed.options(scheduling_strategy=strategy).remote(), timeout=30) == (
        group.id.hex()
    )
    with pytest.raises(ValueError, match="Bundles must be a non-empty list"):
        placement_group([])
    remove_placement_group(group)
    assert placement_group_table(group)["state"] == "REMOVED"


def test_unsupported_calls_are_refused_by_name(client):
    ray = client

    @ray.remote
    def gen():
        yield 1

    with pytest.raises(NotImplementedError, match="generators"):
        gen.remote()


def test_large_put_and_get_stream_in_chunks(client):
    ray = client
    from zray._private.wire.protocol import CLIENT_CHUNK_BYTES

    big = np.random.default_rng(0).integers(0, 255, 100 * 2**20, dtype=np.uint8)
    assert big.nbytes > 20 * CLIENT_CHUNK_BYTES
    ref = ray.put(big)
    back = ray.get(ref, timeout=60)
    assert back.shape == big.shape and np.array_equal(back, big)

    @ray.remote
    def make(n):
        return np.full(n, 7, dtype=np.uint8)

    made = ray.get(make.remote(30 * 2**20 + 3), timeout=60)
    assert made.nbytes == 30 * 2**20 + 3 and int(made[-1]) == 7


def test_released_refs_leave_the_session(client):
    ray = client
    from zray._private.core import runtime

    worker = runtime.client
    baseline = worker.request("stats", None)["held"]
    refs = [ray.put(i) for i in range(20)]
    assert worker.request("stats", None)["held"] == baseline + 20
    del refs
    wait_until(
        lambda: worker.request("stats", None)["held"] == baseline, what="refs to be released"
    )


def test_wrong_token_is_refused(cluster, monkeypatch):
    import zray
    from zray._config import config

    sessions_before = len(cluster.sessions())
    monkeypatch.setattr(config, "token", "not-the-token")
    with pytest.raises(ConnectionError, match="rejected our cluster token"):
        zray.init(cluster.address)
    assert not zray.is_initialized()
    assert len(cluster.sessions()) == sessions_before


def test_session_ends_with_its_client_and_frees_what_it_owned(cluster, monkeypatch):
    import zray
    from zray._config import config
    from zray._private.core import runtime

    monkeypatch.setattr(config, "token", cluster.token)
    zray.init(cluster.address, namespace="leaky")

    @zray.remote
    class Holder:
        def ping(self):
            return "pong"

    holder = Holder.options(name="held-by-client").remote()
    assert zray.get(holder.ping.remote(), timeout=30) == "pong"
    session_pid = runtime.client.request("stats", None)["pid"]
    zray.shutdown()
    wait_until(lambda: not psutil.pid_exists(session_pid), what="the session process to exit")
    zray.init(cluster.address)
    try:
        wait_until(
            lambda: (
                "held-by-client"
                not in [a["name"] for a in zray.util.list_named_actors(all_namespaces=True)]
            ),
            what="the client's actor to end",
        )
    finally:
        zray.shutdown()


class Forwarder:
    """A TCP relay between the client and the client server that can cut every connection
    and refuse new ones for a while: a dropped network link."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.links: list = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.links += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(1 << 20)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open.clear()
        with self.lock:
            links, self.links = self.links, []
        for s in links:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self):
        self.open.set()

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


def test_a_dropped_connection_reconnects_without_losing_the_session(cluster, monkeypatch):
    import zray
    from zray._config import config
    from zray._private.core import runtime

    relay = Forwarder(cluster.port)
    monkeypatch.setattr(config, "token", cluster.token)
    try:
        zray.init(f"ray://127.0.0.1:{relay.port}")

        @zray.remote
        class Counter:
            def __init__(self):
                self.n = 0

            def inc(self):
                self.n += 1
                return self.n

            def slow_inc(self):
                time.sleep(2)
                return self.inc()

        counter = Counter.remote()
        kept = zray.put(np.arange(6 * 2**20, dtype=np.uint8))
        assert zray.get(counter.inc.remote(), timeout=30) == 1
        session_pid = runtime.client.request("stats", None)["pid"]
        disconnects = runtime.client.channel.disconnects
        results = []
        caller = threading.Thread(
            target=lambda: results.append(zray.get(counter.slow_inc.remote(), timeout=60)),
            daemon=True,
        )
        caller.start()
        time.sleep(0.7)  # the call was delivered and runs; its answer will find no client
        relay.cut()
        time.sleep(3)
        assert not results
        relay.restore()
        caller.join(timeout=60)
        assert results == [2]
        assert runtime.client.channel.disconnects > disconnects
        assert zray.get(counter.inc.remote(), timeout=30) == 3  # the same actor, same session
        assert int(zray.get(kept, timeout=60).sum()) == int(
            np.arange(6 * 2**20, dtype=np.uint8).sum()
        )
        assert runtime.client.request("stats", None)["pid"] == session_pid
    finally:
        zray.shutdown()
        relay.close()


def test_a_client_gone_beyond_the_grace_period_loses_its_session(cluster, monkeypatch):
    import zray
    from zray._config import config
    from zray._private.core import runtime

    relay = Forwarder(cluster.port)
    monkeypatch.setattr(config, "token", cluster.token)
    try:
        zray.init(f"ray://127.0.0.1:{relay.port}")
        ref = zray.put("kept?")
        session_pid = runtime.client.request("stats", None)["pid"]
        relay.cut()
        wait_until(
            lambda: not psutil.pid_exists(session_pid),
            timeout=GRACE_S + 20,
            what="the server to end the session after its grace period",
        )
        relay.restore()
        with pytest.raises(ConnectionError, match="session"):
            zray.get(ref, timeout=30)
    finally:
        zray.shutdown()
        relay.close()
    assert not zray.is_initialized()


def _gone(process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_util_connect_and_disconnect(cluster, monkeypatch):
    import zray
    from zray._config import config

    monkeypatch.setattr(config, "token", cluster.token)
    info = zray.util.connect(f"127.0.0.1:{cluster.port}", namespace="via-connect")
    try:
        assert info["ray_version"] == "2.60.0" and zray.is_initialized()
        assert zray.get_runtime_context().namespace == "via-connect"
        with pytest.raises(RuntimeError, match="Ray Client is already connected"):
            zray.init(cluster.address)
        with pytest.raises(NotImplementedError, match="secure"):
            zray.util.connect(f"127.0.0.1:{cluster.port}", secure=True)
    finally:
        zray.util.disconnect()
    assert not zray.is_initialized()
    zray.util.disconnect()  # idempotent


def test_results_are_returned_before_the_call_is_answered(client, tmp_path, monkeypatch):
    """f.remote() does not wait for the session: its refs resolve later, chains of calls are
    submitted in order, and a call the session cannot submit fails at get."""
    ray = client
    from zray.util.client.worker import ClientObjectRef

    @ray.remote
    class Log:
        def __init__(self):
            self.items = []

        def add(self, x):
            self.items.append(x)
            return len(self.items)

        def all(self):
            return self.items

    log = Log.remote()
    refs = [log.add.remote(i) for i in range(50)]  # in order, though none waited
    assert ray.get(log.all.remote(), timeout=60) == list(range(50))
    assert ray.get(refs, timeout=60) == list(range(1, 51))

    @ray.remote
    def inc(x):
        return x + 1

    ref = ray.put(0)
    for _ in range(20):  # each names the previous result before its answer arrived
        ref = inc.remote(ref)
    assert isinstance(ref, ClientObjectRef) and ray.get(ref, timeout=60) == 20
    assert len(ref.hex()) == 56 and ref == ref

    # A module only this process can import: the session cannot unpickle the argument.
    (tmp_path / "only_on_client.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_on_client

    failed = inc.remote(only_on_client.Thing())
    with pytest.raises(ModuleNotFoundError, match="only_on_client"):
        ray.get(failed, timeout=60)
    assert ray.get(inc.remote(1), timeout=60) == 2  # the session carries on


def test_ray_address_naming_a_client_server_connects_through_it(cluster, monkeypatch):
    import zray
    from zray._config import config
    from zray._private.core import runtime

    monkeypatch.setattr(config, "token", cluster.token)
    monkeypatch.setattr(config, "address", f"zray://127.0.0.1:{cluster.port}")
    zray.init()
    try:
        assert runtime.client is not None and runtime.core is None
        assert zray.get(zray.put("through RAY_ADDRESS"), timeout=30) == "through RAY_ADDRESS"
    finally:
        zray.shutdown()
    with pytest.raises(ValueError, match="num_cpus"):  # the cluster's nodes have theirs
        zray.init(f"ray://127.0.0.1:{cluster.port}", num_cpus=1)
    assert not zray.is_initialized()


def test_task_output_is_shown_on_the_client(client, capfd):
    ray = client

    @ray.remote
    def chatty():
        print("hello from the cluster")
        return 1

    assert ray.get(chatty.remote(), timeout=30) == 1
    seen = ""

    def printed():
        nonlocal seen
        seen += capfd.readouterr().out
        return "hello from the cluster" in seen

    wait_until(printed, what="the task's output on the client")
    assert "(chatty pid=" in seen


def test_bad_input_is_refused_and_kills_nothing(client, cluster):
    import zmq

    from zray._private.core import runtime
    from zray._private.wire import protocol as P
    from zray._private.wire.security import Credentials

    worker = runtime.client
    with pytest.raises(ValueError, match="unknown ray:// request"):
        worker.request("no-such-op", None)
    with pytest.raises(ValueError, match="not available through a ray:// connection"):
        worker.request("api", ("shutdown", (), {}))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    Credentials(cluster.token).present(sock)
    try:
        sock.connect(f"tcp://127.0.0.1:{cluster.port}")
        sock.send_multipart([b"garbage"])
        sock.send_multipart([b"\x01\x02", b"\xc1"])
        sock.send_multipart(P.encode(P.ClientRequest(1, "task", 1, [2**62])))
        assert sock.poll(10_000), "the client server did not answer"
        record, _, _ = P.decode(*sock.recv_multipart()[:2])
        assert isinstance(record, P.ClientSessionEnded)  # no session for that id
    finally:
        sock.close()
        ctx.term()
    # Through a live session: sizes no one could send, a chunk of no message.
    worker.channel.send([P.encode(P.ClientRequest(10**9, "put", 0, [2**62]))])
    worker.channel.send([P.encode(P.ClientChunk(10**9 + 1, 5, 0)) + [b"x"]])
    ray = client
    assert ray.get(ray.put("still serving"), timeout=30) == "still serving"
