"""The cluster `zray start` last started or joined on this machine (Ray's ray_current_cluster).

`init()` without an address attaches to it, and nodes and drivers of this machine find its token
through it even when its sessions live under another root (`zray start --temp-dir`). The record
is kept in the session root, so ZRAY_SESSION_DIR_ROOT keeps clusters of different users of one
account (tests, CI jobs) apart. A record whose node is gone (crash, reboot) reads as no record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from zray._config import config
from zray._private.wire import security
from zray._private.common import session

logger = logging.getLogger(__name__)

RECORD_FILE = "current_cluster"
# Roots given with `zray start --temp-dir`, so that `zray stop` finds their nodes.
TEMP_DIRS_FILE = "temp_dirs"


@dataclasses.dataclass(frozen=True)
class ClusterRecord:
    address: str  # the head's host:port
    session_dir: str  # the session of the node started here: it holds the cluster token
    pid: int  # that node's daemon
    started: float  # when the daemon started: after a reboot its pid may name another process

    def alive(self) -> bool:
        import psutil  # only when a record exists: init() without one stays lean

        try:
            process = psutil.Process(self.pid)
            started, status = process.create_time(), process.status()
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return False
        # A killed daemon stays a zombie until its (adoptive) parent reaps it.
        return (
            abs(started - self.started) < 0.01
            and status != psutil.STATUS_ZOMBIE
            and os.path.isdir(self.session_dir)
        )


def record_for(address: str, session_dir: str, pid: int) -> ClusterRecord:
    import psutil

    return ClusterRecord(
        address.replace("tcp://", ""), session_dir, pid, psutil.Process(pid).create_time()
    )


def write(record: ClusterRecord, roots: list):
    for root in dict.fromkeys(roots):
        os.makedirs(root, exist_ok=True)
        previous = read(root)
        if previous is not None and previous.address != record.address:
            logger.info(
                "Overwriting previous zray address (%s). Running zray.init() on this "
                "node will now connect to the new instance at %s. To override this "
                "behavior, pass address=%s to zray.init().",
                previous.address,
                record.address,
                previous.address,
            )
        path = os.path.join(root, RECORD_FILE)
        scratch = f"{path}.{os.getpid()}"
        with open(os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(dataclasses.asdict(record), f)
        os.replace(scratch, path)  # readers never see half a record


def read(root: str | None = None) -> ClusterRecord | None:
    """The live record in `root` (default: the session root), else None."""
    path = os.path.join(root or config.session_dir_root, RECORD_FILE)
    try:
        with open(path) as f:
            owner = os.fstat(f.fileno()).st_uid
            record = ClusterRecord(**json.load(f))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring the unreadable cluster record %s: %s", path, exc)
        return None
    if owner != os.getuid():
        # Another user's record would send our programs (and the token it points us to) to
        # a cluster of theirs: as if the root were shared with a stranger.
        logger.warning("ignoring the cluster record %s: it belongs to user %d", path, owner)
        return None
    return record if record.alive() else None


def clear(root: str):
    try:
        os.unlink(os.path.join(root, RECORD_FILE))
    except FileNotFoundError:
        pass


def remember_temp_dir(root: str, temp_dir: str):
    if os.path.abspath(temp_dir) == os.path.abspath(root) or temp_dir in temp_dirs(root):
        return
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, TEMP_DIRS_FILE), "a") as f:
        f.write(temp_dir + "\n")


def temp_dirs(root: str) -> list:
    try:
        with open(os.path.join(root, TEMP_DIRS_FILE)) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def forget_temp_dirs(root: str):
    try:
        os.unlink(os.path.join(root, TEMP_DIRS_FILE))
    except FileNotFoundError:
        pass


def local_sessions() -> list:
    """Live sessions of this machine's clusters: those under the session root, then the one of
    the recorded cluster wherever it lives."""
    sessions = session.live_sessions()
    record = read()
    if record is not None and record.session_dir not in sessions:
        sessions.append(record.session_dir)
    return sessions


def local_credentials(address: str, exact: bool = False) -> security.Credentials | None:
    """The credentials a node of this machine holds for the cluster at `address`, if any (see
    security.local_credentials)."""
    address = address if "://" in address else "tcp://" + address
    return security.local_credentials(address, local_sessions(), exact)
