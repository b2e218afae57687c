"""Shared fixtures: a real embedded cluster per test module, and a check that nothing leaks."""

from __future__ import annotations

import os
import time

import psutil
import pytest

SHM = "/dev/shm"


def zray_segments() -> set:
    return {name for name in os.listdir(SHM) if name.startswith("zray-")}


# Every process this test run starts inherits this mark, daemons that outlive the CLI that
# started them included, so a segment can be told apart from another run's on this machine.
RUN_MARK = "ZRAY_TEST_RUN"
os.environ.setdefault(RUN_MARK, str(os.getpid()))


def _run_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            variables = f.read().split(b"\0")
    except OSError:  # gone
        return None
    prefix = RUN_MARK.encode() + b"="
    return next((v[len(prefix) :].decode() for v in variables if v.startswith(prefix)), "")


def _foreign(segment: str) -> bool:
    """A segment of another test run on this machine (another engineer's, a CI run), not a
    leak of ours: its creator lives and is not of our run, or, once the creator is gone (a
    `zray start` exits at once), a process of another run still maps it."""
    creator = segment.rsplit("-", 1)[0].rsplit("_", 1)[-1]
    if not creator.isdigit():
        return False
    ours = os.environ[RUN_MARK]
    run = _run_of(int(creator))
    if run is not None:
        return run != ours
    path = os.path.join(SHM, segment)
    for pid in psutil.pids():
        run = _run_of(pid)
        if run is None or run == ours:
            continue
        try:
            with open(f"/proc/{pid}/maps") as maps:
                if any(line.rstrip().endswith(path) for line in maps):
                    return True
        except OSError:  # gone meanwhile
            continue
    return False


def zray_sessions() -> set:
    """Session directories under the session root, but another test run's (a CI run uses the
    same default root)."""
    from zray._config import config

    root = config.session_dir_root
    try:
        names = [n for n in os.listdir(root) if n.startswith("session_")]
    except FileNotFoundError:
        return set()
    return {n for n in names if not _foreign_session(os.path.join(root, n))}


def _foreign_session(path: str) -> bool:
    """Its creator, or a node daemon it lists, lives and belongs to another run."""
    ours = os.environ[RUN_MARK]
    pids = [path.rsplit("_", 1)[-1]]
    try:
        for name in os.listdir(os.path.join(path, "nodes")):
            with open(os.path.join(path, "nodes", name)) as f:
                pids.append(f.read().split()[0])
    except (OSError, IndexError):
        pass
    runs = {_run_of(int(pid)) for pid in pids if pid.isdigit()} - {None}
    return bool(runs) and ours not in runs


def child_processes() -> list:
    return [p for p in psutil.Process().children(recursive=True) if _alive(p)]


def child_processes_running(marker: str) -> list:
    """This process's live descendants whose command line contains `marker`; one that exits
    while it is being looked at is left out (a zombie's command line raises)."""
    found = []
    for process in child_processes():
        try:
            if marker in " ".join(process.cmdline()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _alive(process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def exited(pid: int, timeout: float = 10.0) -> bool:
    """Waits (bounded) for process `pid` to be gone; True if it is."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def assert_no_leaks(before_segments: set, before_sessions: set, timeout: float = 10.0):
    """Every process, /dev/shm segment and session directory the test made is gone."""
    deadline = time.monotonic() + timeout
    while True:
        procs = child_processes()
        segments = {s for s in zray_segments() - before_segments if not _foreign(s)}
        sessions = zray_sessions() - before_sessions
        if not procs and not segments and not sessions:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"leaked: processes={[(p.pid, p.cmdline()[-3:]) for p in procs]} "
                f"segments={segments} sessions={sessions}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="session", autouse=True)
def embedded_clusters_stay_embedded():
    """init() without an address attaches to ZRAY_ADDRESS/RAY_ADDRESS or to the cluster `zray
    start` recorded under the session root. Tests that start clusters keep them under roots of
    their own, so neither may point anywhere here, or tests would share a cluster unawares."""
    from zray._config import config
    from zray._private.common import cluster_record

    if config.address:
        pytest.exit(
            f"ZRAY_ADDRESS/RAY_ADDRESS is set ({config.address!r}): unset it to run the tests",
            returncode=1,
        )
    record = cluster_record.read()
    if record is not None:
        pytest.exit(
            f"`zray start` left a cluster at {record.address} recorded under the test "
            f"session root {config.session_dir_root}: stop it with `zray stop`",
            returncode=1,
        )
    yield


@pytest.fixture(scope="module")
def ray():
    """An embedded two-CPU cluster shared by the tests of one module."""
    import zray

    before_segments, before_sessions = zray_segments(), zray_sessions()
    zray.init(num_cpus=2)
    yield zray
    zray.shutdown()
    assert_no_leaks(before_segments, before_sessions)


@pytest.fixture
def fresh():
    """For tests that start their own cluster: checks that it leaves nothing behind."""
    import zray

    before_segments, before_sessions = zray_segments(), zray_sessions()
    yield zray
    zray.shutdown()
    assert_no_leaks(before_segments, before_sessions)
