"""The dashboard's parts that need no cluster: which log files it serves, and its port."""

from __future__ import annotations

import socket

import pytest


from zray._private.node import dashboard_process
from zray.dashboard.logs import LogFiles


@pytest.fixture
def logs(tmp_path):
    session = tmp_path / "session_x"
    (session / "logs").mkdir(parents=True)
    (session / "logs" / "worker-ab-1.out").write_text("one\ntwo\n")
    (tmp_path / "secret").write_text("not a log")
    return LogFiles(lambda: {"n1": str(session)})


def test_only_files_of_the_listing_are_read(logs):
    assert [f["id"] for f in logs.listing()] == ["n1/worker-ab-1.out"]
    for file_id in ("n1/../../secret", "n1/../secret", "n1/", "n2/worker-ab-1.out", "n1/x.out"):
        assert logs.read(file_id, None) is None, file_id


def test_a_tail_continues_from_its_offset(logs, tmp_path):
    first = logs.read("n1/worker-ab-1.out", None)
    assert (first["text"], first["offset"]) == ("one\ntwo\n", 8)
    with open(tmp_path / "session_x" / "logs" / "worker-ab-1.out", "a") as f:
        f.write("three\n")
    later = logs.read("n1/worker-ab-1.out", first["offset"])
    assert (later["text"], later["offset"]) == ("three\n", 14)
    # A file replaced by a shorter one is read again from its start.
    (tmp_path / "session_x" / "logs" / "worker-ab-1.out").write_text("new\n")
    assert logs.read("n1/worker-ab-1.out", 14)["text"] == "new\n"


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
