"""A restarted head's probes of the nodes it awaits (zray/_private/head/node_probe.py): a node
whose port refuses is dead at once, one whose port accepts is waited for, one that never
answers is dead after the bound."""

from __future__ import annotations

import errno
import socket
import time

import pytest

from zray._private.head import node_probe
from zray._private.head.node_probe import NodeProbes, probe_target


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


def _run(probes: NodeProbes, awaited: dict, start: float, seconds: float, step: float = 0.05):
    """Ticks on a fake clock (and a little real time, for the connects to complete)."""
    dead, now = [], start
    while now < start + seconds:
        dead += probes.tick(now, awaited)
        awaited = {n: a for n, a in awaited.items() if n not in {d for d, _ in dead}}
        time.sleep(0.002)
        now += step
    return dead


def test_a_refused_port_is_death_at_once():
    probes = NodeProbes(unreachable_s=30.0)
    try:
        port = _closed_port()
        dead = _run(probes, {b"n1": f"ipc:///nonexistent/sock|tcp://127.0.0.1:{port}"}, 100.0, 0.5)
        assert [n for n, _ in dead] == [b"n1"]
        assert "refuses connections" in dead[0][1]
    finally:
        probes.close()


def test_a_listening_node_is_waited_for():
    probes = NodeProbes(unreachable_s=1.0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        try:
            assert _run(probes, {b"n1": f"tcp://127.0.0.1:{port}"}, 100.0, 3.0) == []
            assert probes.sent >= 3  # probed again and again, not once
        finally:
            probes.close()


def test_a_node_that_never_answers_is_dead_after_the_bound(monkeypatch):
    monkeypatch.setattr(node_probe, "PROBE_TIMEOUT_S", 0.2)
    probes = NodeProbes(unreachable_s=2.0)
    # A machine that vanished never answers the SYN: the connect stays in progress.
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, addr: errno.EINPROGRESS)
    monkeypatch.setattr(node_probe.select, "select", lambda r, w, x, t: ([], [], []))
    awaited = {b"n1": "tcp://10.0.0.2:7000"}
    try:
        assert _run(probes, awaited, 100.0, 1.5) == []
        dead = _run(probes, awaited, 101.5, 1.5)
        assert [n for n, _ in dead] == [b"n1"]
        assert "has not answered" in dead[0][1]
    finally:
        probes.close()


def test_a_node_no_longer_awaited_is_no_longer_probed():
    probes = NodeProbes(unreachable_s=30.0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        probes.tick(100.0, {b"n1": address})
        probes.tick(100.1, {})
        assert probes._probes == {}
        probes.close()


@pytest.mark.parametrize(
    "address, target",
    [
        ("ipc:///a/b|tcp://10.0.0.2:7000", (socket.AF_INET, ("10.0.0.2", 7000))),
        ("tcp://[::1]:7000", (socket.AF_INET6, ("::1", 7000))),
        ("ipc:///a/b", (socket.AF_UNIX, "/a/b")),
        ("direct:///x", None),
    ],
)
def test_the_probed_endpoint(address, target):
    assert probe_target(address) == target
