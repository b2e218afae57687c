"""Session directories: where a cluster keeps its sockets, pid files and logs, and how the
leftovers of a crashed session are found and removed at the next start."""

from __future__ import annotations

import logging
import os
import shutil
import time

from zray._config import config

logger = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"
SHM_PREFIX = "zray-"


def new_session_dir() -> str:
    root = config.session_dir_root
    os.makedirs(root, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(root, f"session_{stamp}_{os.getpid()}")
    os.makedirs(os.path.join(path, "sockets"), exist_ok=True)
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    os.makedirs(os.path.join(path, "nodes"), exist_ok=True)
    return path


def session_name(session_dir: str) -> str:
    return os.path.basename(session_dir.rstrip("/"))


IPC_PATH_MAX = 107  # sun_path in struct sockaddr_un, less the terminating NUL


def socket_address(session_dir: str, name: str) -> str:
    path = os.path.join(session_dir, "sockets", name)
    if len(path) > IPC_PATH_MAX:
        raise ValueError(
            f"socket path {path!r} is {len(path)} characters, over the {IPC_PATH_MAX} a Unix "
            f"socket allows: set ZRAY_SESSION_DIR_ROOT to a shorter directory"
        )
    return "ipc://" + path


def arena_path(session_dir: str, node_id: bytes) -> str:
    return os.path.join(SHM_DIR, f"{SHM_PREFIX}{session_name(session_dir)}-{node_id.hex()[:12]}")


def write_node_pid(session_dir: str, node_id: bytes, embedded: bool):
    """Records this daemon: `<pid> embedded|daemon` (`zray stop` leaves embedded ones alone)."""
    with open(os.path.join(session_dir, "nodes", node_id.hex()), "w") as f:
        f.write(f"{os.getpid()} {'embedded' if embedded else 'daemon'}")


STOPPING_FILE = "cluster_stopping"


def mark_cluster_stopping(session_dir: str):
    """`zray stop` ends the cluster on purpose: a head stopped now clears its durable state
    (one terminated alone keeps it, to be restarted)."""
    try:
        with open(os.path.join(session_dir, STOPPING_FILE), "w"):
            pass
    except OSError:
        pass


def cluster_stopping(session_dir: str) -> bool:
    return os.path.exists(os.path.join(session_dir, STOPPING_FILE))


def read_node_pid(path: str) -> tuple[int, str]:
    with open(path) as f:
        parts = f.read().split()
    return int(parts[0]), parts[1] if len(parts) > 1 else "daemon"


def remove_node_pid(session_dir: str, node_id: bytes):
    try:
        os.unlink(os.path.join(session_dir, "nodes", node_id.hex()))
    except FileNotFoundError:
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A dead process its parent has not reaped yet: daemons started by `zray start` belong
    to init, and some containers' init reaps late or never."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False  # no procfs: trust kill(0)
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"Z"


def session_alive(session_dir: str) -> bool:
    nodes = os.path.join(session_dir, "nodes")
    try:
        entries = os.listdir(nodes)
    except FileNotFoundError:
        return False
    for entry in entries:
        try:
            if _pid_alive(read_node_pid(os.path.join(nodes, entry))[0]):
                return True
        except (OSError, ValueError, IndexError):
            continue
    # A session whose node is still starting has no pid file yet: judge by the creator's pid.
    creator = session_dir.rsplit("_", 1)[-1]
    return creator.isdigit() and not entries and _pid_alive(int(creator))


def live_sessions(root: str | None = None) -> list:
    root = root or config.session_dir_root
    return [
        os.path.join(root, entry)
        for entry in sorted(_list(root))
        if entry.startswith("session_") and session_alive(os.path.join(root, entry))
    ]


def remove_session(session_dir: str):
    from zray._private.common import kept_job_logs

    kept_job_logs.keep(session_dir)  # a job's log stays readable after its session
    name = session_name(session_dir)
    shutil.rmtree(session_dir, ignore_errors=True)
    for entry in _list(SHM_DIR):
        if entry.startswith(f"{SHM_PREFIX}{name}-"):
            _unlink(os.path.join(SHM_DIR, entry))
    # A node killed while it closed its spill threads leaves its files in a configured spill
    # directory, outside the session's own.
    for entry in _list(config.spill_dir) if config.spill_dir else ():
        if entry.startswith(f"{name}-"):
            shutil.rmtree(os.path.join(config.spill_dir, entry), ignore_errors=True)


def _owner_dead(owner: str, live_names: set) -> bool:
    """Whether the session named `owner` is gone. Sessions may live under another root
    (ZRAY_SESSION_DIR_ROOT): judge by the pid that created the session, which outlives its
    nodes by construction."""
    creator = owner.rsplit("_", 1)[-1]
    return owner not in live_names and not (creator.isdigit() and _pid_alive(int(creator)))


def clean_stale_sessions(root: str | None = None) -> list:
    """Removes what dead sessions under `root` (default: the session root) left: their
    directories, /dev/shm arenas, and their nodes' subdirectories of a configured spill
    directory (<session name>-<node id>)."""
    removed = []
    root = root or config.session_dir_root
    live_names = set()
    for entry in _list(root):
        path = os.path.join(root, entry)
        if not entry.startswith("session_") or entry == "session_latest":
            continue
        if session_alive(path):
            live_names.add(entry)
            continue
        remove_session(path)
        removed.append(path)
    for entry in _list(SHM_DIR):
        if entry.startswith(SHM_PREFIX + "session_"):
            if _owner_dead(entry[len(SHM_PREFIX) :].rsplit("-", 1)[0], live_names):
                _unlink(os.path.join(SHM_DIR, entry))
                removed.append(entry)
    if config.spill_dir:
        for entry in _list(config.spill_dir):
            path = os.path.join(config.spill_dir, entry)
            if (
                entry.startswith("session_")
                and os.path.isdir(path)
                and _owner_dead(entry.rsplit("-", 1)[0], live_names)
            ):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    if removed:
        logger.info("removed leftovers of dead sessions: %s", removed)
    return removed


def _list(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
