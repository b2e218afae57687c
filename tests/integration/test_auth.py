"""Cluster token and encryption end to end: CLI clusters on loopback, a second node on 127.0.0.2,
drivers with the right, a wrong and no token, and raw ZeroMQ strangers."""

import os
import shutil
import stat
import tempfile
import time

import pytest
import zmq

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import connect_remote_driver, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT, run_script
from zray._private.wire import protocol as P
from zray._private.wire.security import Credentials
from zray._private.wire.transport import choose_address


def start_cluster(*head_flags, join_flags=("--token",)):
    """A head plus a node on 127.0.0.2 (joined with the printed token); returns what the tests
    need and a stop function that checks nothing leaked."""
    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    env.pop("ZRAY_TOKEN", None)
    before = (zray_segments(), zray_sessions())
    head = zray_cli(
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "1",
        "--resources",
        '{"head": 1}',
        *head_flags,
        env=env,
    )
    assert head.returncode == 0, head.stderr
    address = [l for l in head.stdout.splitlines() if l.startswith("Head address:")][0].split()[-1]
    token = token_of(head.stdout)
    joined = zray_cli(
        "start",
        f"--address={address}",
        "--num-cpus",
        "1",
        "--resources",
        '{"w": 1}',
        "--node-ip-address",
        "127.0.0.2",
        "--token",
        token,
        env=env,
    )
    assert joined.returncode == 0, joined.stderr

    def stop():
        stopped = zray_cli("stop", env=env)
        assert "Stopped 2" in stopped.stdout, stopped.stdout + stopped.stderr
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)

    return dict(root=root, env=env, address=address, token=token, head=head), stop


def connect_driver(zray, cluster):
    connect_remote_driver(zray, cluster["address"], cluster["token"], 2)


# First: the module's plain cluster and its driver live until the module ends.
def test_encrypted_cluster_runs_tasks_and_moves_large_objects(fresh):
    import numpy as np

    ray = fresh
    cluster, stop = start_cluster("--encrypt")
    try:
        assert "--encrypt" in cluster["head"].stdout  # the join command the head printed
        connect_driver(ray, cluster)
        import zray._private.core.runtime as runtime

        assert runtime.core.creds.encrypt  # learned from the head: ZRAY_ENCRYPT was not set

        @ray.remote(resources={"w": 1})
        def produce(n):
            return np.arange(n, dtype=np.int64)

        @ray.remote(resources={"w": 1})
        def checksum(arr):
            return int(arr.sum()), ray.get_runtime_context().get_node_id()

        n = 64 * 2**20 // 8
        arr = ray.get(produce.remote(n), timeout=60)  # pulled from 127.0.0.2 over CURVE
        assert np.array_equal(arr, np.arange(n, dtype=np.int64))
        data = np.random.default_rng(1).integers(0, 2**40, n, dtype=np.int64)
        total, where = ray.get(checksum.remote(data), timeout=60)  # and the other way
        assert total == int(data.sum())
        assert where == [x for x in ray.nodes() if "w" in x["Resources"]][0]["NodeID"]
        stats_ = stats(runtime.core.node_address)
        assert stats_["transfer"]["bytes_pulled"] >= n * 8
        # A PLAIN client holding the right token still does not get in.
        ctx = zmq.Context()
        try:
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            Credentials(cluster["token"]).present(sock)
            sock.connect(choose_address(runtime.core.head_address))
            sock.send_multipart(P.encode(P.ShutdownNode("plain"), seq=1))
            time.sleep(0.5)
            sock.close()
        finally:
            ctx.term()
        assert ray.get(checksum.remote(np.ones(10, dtype=np.int64)), timeout=30)[0] == 10
    finally:
        ray.shutdown()
        stop()


@pytest.fixture(scope="module")
def plain():
    import zray

    cluster, stop = start_cluster()
    try:
        connect_driver(zray, cluster)
        yield zray, cluster
    finally:
        zray.shutdown()
        stop()


def stats(address):
    import zray._private.core.runtime as runtime

    return runtime.core.requests.call(address, P.GetNodeStats(0), 10)[0].stats


def test_head_prints_token_and_keeps_it_private(plain):
    _, cluster = plain
    out = cluster["head"].stdout
    token = cluster["token"]
    assert len(token) >= 40
    assert f"zray start --address={cluster['address']} --token={token}" in out
    sessions = [
        os.path.join(cluster["root"], s)
        for s in os.listdir(cluster["root"])
        if s.startswith("session_")
    ]
    assert len(sessions) == 2  # head and joined node both keep the token
    for session in sessions:
        path = os.path.join(session, "token")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert open(path).read().strip() == token


def test_token_holders_run_tasks_on_both_nodes(plain):
    ray, cluster = plain

    @ray.remote(num_cpus=1)
    def where(x):
        return x, ray.get_runtime_context().get_node_id()

    results = ray.get(
        [where.options(scheduling_strategy="SPREAD").remote(i) for i in range(6)], timeout=60
    )
    assert [x for x, _ in results] == list(range(6))
    assert len({node for _, node in results}) == 2
    # A driver on this machine finds the token in the session directory by itself.
    script = """
        import zray as ray
        ray.init(address={!r})
        @ray.remote
        def f(x):
            return x * 2
        print(ray.get(f.remote(21), timeout=30))
        ray.shutdown()
    """
    for how in ("auto", cluster["address"]):
        result = run_script(script.format(how), env={"ZRAY_SESSION_DIR_ROOT": cluster["root"]})
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == "42"
    status = zray_cli("status", env=cluster["env"])
    assert status.returncode == 0 and "2 alive" in status.stdout, status.stderr


def test_driver_with_wrong_or_no_token_is_refused(plain):
    _, cluster = plain
    script = """
        import zray as ray
        try:
            ray.init(address={!r})
        except ConnectionError as exc:
            print("refused:", exc)
    """.format(cluster["address"])
    elsewhere = tempfile.mkdtemp(prefix="zt", dir="/tmp")  # no session to find a token in
    try:
        for env in (
            {"ZRAY_TOKEN": "wrong"},
            {"ZRAY_TOKEN": "wrong", "ZRAY_ENCRYPT": "1"},
            {"ZRAY_SESSION_DIR_ROOT": elsewhere},
        ):
            env.setdefault("ZRAY_SESSION_DIR_ROOT", cluster["root"])
            start = time.monotonic()
            result = run_script(script, env=env, timeout=60)
            assert result.returncode == 0, result.stderr
            assert "refused:" in result.stdout, result.stdout + result.stderr
            assert time.monotonic() - start < 30
        assert (
            "rejected our cluster token"
            in run_script(
                script, env={"ZRAY_TOKEN": "wrong", "ZRAY_SESSION_DIR_ROOT": cluster["root"]}
            ).stdout
        )
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_strangers_messages_are_never_acted_on(plain):
    import zray._private.core.runtime as runtime

    ray, cluster = plain
    core = runtime.core
    targets = {"node": core.node_address, "head": core.head_address}
    before = stats(core.node_address)
    rejected_before = before["auth_rejected"] + before["head"]["auth_rejected"]
    ctx = zmq.Context()
    socks = []
    try:
        for setup in (
            lambda s: None,  # no credentials at all
            Credentials("wrong-token").present,
            Credentials("wrong-token", encrypt=True).present,
            Credentials(cluster["token"], encrypt=True).present,
        ):  # wrong mechanism
            for address in targets.values():
                sock = ctx.socket(zmq.DEALER)
                sock.linger = 0
                # A rejected handshake can leave the socket with no peer, where a send would
                # block for good: what cannot even be sent is not acted on either.
                sock.sndtimeo = 2000
                setup(sock)
                inbox = ctx.socket(zmq.ROUTER)  # where answers would come, if any were sent
                inbox.linger = 0
                port = inbox.bind_to_random_port("tcp://127.0.0.1")
                sock.connect(choose_address(address))
                socks.append((sock, inbox))
                lease = P.RequestLease(
                    1, {"CPU": 1.0}, b"\x01\x00\x00\x00", "DEFAULT", False, b"", False, ""
                )
                try:
                    sock.send_multipart(P.encode(P.Hello(f"tcp://127.0.0.1:{port}")))
                    sock.send_multipart(P.encode(lease, seq=5))
                    sock.send_multipart(P.encode(P.KvPut("fn", b"evil", b"x", True), seq=6))
                    sock.send_multipart(P.encode(P.ShutdownNode("stranger"), seq=7))
                except zmq.Again:
                    pass
        time.sleep(1.0)
        for _, inbox in socks:
            assert not inbox.poll(0), "a stranger got an answer"
    finally:
        for sock, inbox in socks:
            sock.close()
            inbox.close()
        ctx.term()
    after = stats(core.node_address)
    assert after["auth_rejected"] + after["head"]["auth_rejected"] >= rejected_before + 8
    # The driver's leases idled back long ago; a stranger's request was never queued.
    assert after["scheduler"]["queued"] == 0 and after["scheduler"]["leases"] == 0
    reply, _ = core.requests.call(core.head_address, P.KvGet("fn", b"evil", 0.0), 10)
    assert reply.found is False

    @ray.remote
    def add(a, b):
        return a + b

    # Both daemons ignored the strangers' ShutdownNode and still serve.
    assert ray.get([add.remote(i, 1) for i in range(10)], timeout=60) == list(range(1, 11))
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2


def test_joining_without_or_with_a_wrong_token_fails_fast(plain):
    _, cluster = plain
    # A machine that holds none of the cluster's sessions (here: another session root).
    elsewhere = dict(
        cluster["env"], ZRAY_SESSION_DIR_ROOT=tempfile.mkdtemp(prefix="zt", dir="/tmp")
    )
    try:
        for extra, env, why in (
            ((), elsewhere, "needs its token"),
            (("--token", "wrong"), cluster["env"], "rejected our cluster"),
            (("--token", "wrong", "--encrypt"), cluster["env"], "does not use encryption"),
        ):
            start = time.monotonic()
            joined = zray_cli(
                "start",
                f"--address={cluster['address']}",
                "--num-cpus",
                "1",
                "--node-ip-address",
                "127.0.0.2",
                *extra,
                env=env,
            )
            assert time.monotonic() - start < 30
            assert joined.returncode == 1
            assert why in joined.stderr, joined.stderr
    finally:
        shutil.rmtree(elsewhere["ZRAY_SESSION_DIR_ROOT"], ignore_errors=True)
    # The refused nodes removed their sessions (they never made an arena).
    assert len([s for s in os.listdir(cluster["root"]) if s.startswith("session_")]) == 2


def test_every_tcp_listener_is_on_the_node_ip(plain):
    import psutil

    ray, cluster = plain

    @ray.remote
    def ping():
        return 1

    assert (
        sum(
            ray.get(
                [ping.options(scheduling_strategy="SPREAD").remote() for _ in range(4)], timeout=30
            )
        )
        == 4
    )  # workers on both nodes
    processes = [psutil.Process()]
    for session in os.listdir(cluster["root"]):
        nodes = os.path.join(cluster["root"], session, "nodes")
        for name in os.listdir(nodes) if os.path.isdir(nodes) else []:
            pid = int(open(os.path.join(nodes, name)).read().split()[0])
            daemon = psutil.Process(pid)
            processes += [daemon] + daemon.children(recursive=True)
    listeners = [
        (p.pid, c.laddr)
        for p in processes
        for c in p.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    ]
    assert len(listeners) >= 5  # head, two nodes, workers, this driver
    assert {laddr.ip for _, laddr in listeners} <= {"127.0.0.1", "127.0.0.2"}, listeners
