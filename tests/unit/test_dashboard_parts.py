"""The dashboard's parts that need no cluster: which log files a node serves, and the port."""

from __future__ import annotations

import os
import socket

import pytest


from zray._private.node import dashboard_process, log_files


@pytest.fixture
def session(tmp_path):
    session = tmp_path / "session_x"
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "worker-ab-1.out").write_text("one\ntwo\n")
    (tmp_path / "secret").write_text("not a log")
    return str(session)


def test_only_files_of_the_nodes_log_directory_are_read(session):
    assert [name for name, _, _ in log_files.listing(session)] == ["worker-ab-1.out"]
    for name in ("../../secret", "../secret", "", ".", "..", "x.out", "logs/worker-ab-1.out"):
        assert log_files.read(session, name, -1) is None, name


def test_a_tail_continues_from_its_offset(session):
    path = os.path.join(session, "logs", "worker-ab-1.out")
    first = log_files.read(session, "worker-ab-1.out", -1)
    assert (first["data"], first["offset"]) == (b"one\ntwo\n", 8)
    with open(path, "a") as f:
        f.write("three\n")
    later = log_files.read(session, "worker-ab-1.out", first["offset"])
    assert (later["data"], later["offset"]) == (b"three\n", 14)
    # A file replaced by a shorter one is read again from its start.
    with open(path, "w") as f:
        f.write("new\n")
    assert log_files.read(session, "worker-ab-1.out", 14)["data"] == b"new\n"


def test_a_first_look_shows_the_end_from_a_line_start(session):
    path = os.path.join(session, "logs", "big.out")
    with open(path, "w") as f:
        f.write("".join(f"line {i}\n" for i in range(40_000)))
    tail = log_files.read(session, "big.out", -1)
    assert tail["truncated"] and tail["data"].startswith(b"line ")
    assert tail["data"].endswith(b"line 39999\n") and len(tail["data"]) <= log_files.TAIL_BYTES
    assert log_files.read(session, "big.out", 0, 10**9)["offset"] == log_files.CHUNK_BYTES


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_default_port_moves_up_when_taken_and_a_named_one_does_not(monkeypatch):
    port = _free_port()
    monkeypatch.setattr(dashboard_process, "DEFAULT_PORT", port)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        moved = dashboard_process.bind("127.0.0.1", None)
        try:
            assert moved.getsockname()[1] > port
        finally:
            moved.close()
        with pytest.raises(dashboard_process.DashboardPortError, match=f"port {port}"):
            dashboard_process.bind("127.0.0.1", port)
