"""Submitted jobs' logs outlive their session. A job's record outlives a head restart (the head
persists its KV), and Ray keeps its log readable too; but a zray session directory is removed
when its node stops or, after a crash, at the next start. So a session's
`logs/job-driver-<submission id>.log` files are moved, as the session is removed, to
`<session root>/job_logs/<session name>/`, and a node asked for a job's log it does not have
looks there (the newest such file wins: submission ids are unique within a cluster, not across
the clusters that share a machine's session root).

Their lifetime is Ray's where Ray has one: `delete_job` removes a job's kept copies (Ray
deletes only the job's record, and its log stays in its session directory, unreachable by the
Jobs API, until that directory goes; so zray leaves the live session's copy too, but no longer
keeps it past its session). Copies are known by file name only, so a submission id that two
clusters sharing a session root both used names the same copies, for reading and deleting. And past `kept_job_logs_max_bytes` (1 GiB) the oldest kept logs
are removed as a session's are added: Ray never removes old sessions itself, which lets a
machine's disk fill over months of jobs; a size cap (not a count) bounds what is at stake,
disk, whatever the logs' sizes, and 1 GiB holds two logs of the size Ray's rotation allows one
file (512 MiB) or thousands of the usual few-megabyte ones.
"""

from __future__ import annotations

import glob
import logging
import os
import re

from zray._config import config

logger = logging.getLogger(__name__)

KEPT_DIR = "job_logs"
# In a live session's directory: its job logs whose jobs were deleted ("name mtime_ns size"
# as they were then), which go with the session instead of being kept, unless written again
# since (a job submitted anew under the id: Ray lets a deleted job's id be used again).
FORGOTTEN = "deleted_job_logs"
_JOB_LOG = re.compile(r"^job-driver-[^/]+\.log$")


def is_job_log(name: str) -> bool:
    return bool(_JOB_LOG.match(name))


def log_name(submission_id: str) -> str | None:
    """The file name of a submitted job's driver log (None for an id no such file has)."""
    name = f"job-driver-{submission_id}.log"
    return name if isinstance(submission_id, str) and is_job_log(name) else None


def _kept_dir(session_dir: str) -> str:
    return os.path.join(os.path.dirname(session_dir.rstrip("/")), KEPT_DIR)


def keep(session_dir: str, max_bytes: int | None = None) -> list:
    """Moves the session's job logs (but those of deleted jobs) out of it, before it is
    removed, then removes the oldest kept logs past `max_bytes` (`kept_job_logs_max_bytes`);
    the paths they moved to."""
    logs = os.path.join(session_dir, "logs")
    try:
        names = [n for n in os.listdir(logs) if is_job_log(n)]
    except OSError:
        return []
    forgotten = _forgotten(session_dir)
    names = [n for n in names if _stamp(os.path.join(logs, n)) not in forgotten.get(n, ())]
    session_dir = session_dir.rstrip("/")
    target = os.path.join(_kept_dir(session_dir), os.path.basename(session_dir))
    kept = []
    for name in names:
        try:
            os.makedirs(target, exist_ok=True)
            os.replace(os.path.join(logs, name), os.path.join(target, name))
        except OSError as exc:  # a full disk must not stop the session's removal
            logger.warning("job log %s not kept: %s", name, exc)
            continue
        kept.append(os.path.join(target, name))
    cap = config.kept_job_logs_max_bytes if max_bytes is None else max_bytes
    removed = set(prune(_kept_dir(session_dir), cap))
    return [path for path in kept if path not in removed]


def prune(kept_dir: str, max_bytes: int) -> list:
    """Removes the least recently written kept logs until those left total at most
    `max_bytes` (and the session directories left empty); the paths removed."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(kept_dir), "*", "job-driver-*.log")):
        try:
            info = os.stat(path)
        except OSError:
            continue
        found.append((info.st_mtime, path, info.st_size))
    found.sort()
    held = sum(size for _mtime, _path, size in found)
    removed = []
    for _mtime, path, size in found:
        if held <= max_bytes:
            break
        try:
            os.unlink(path)
        except OSError:
            continue  # another node of this machine removed it first
        held -= size
        removed.append(path)
        _remove_if_empty(os.path.dirname(path))
    return removed


def forget(session_dir: str, submission_id: str) -> list:
    """A deleted job's log: its kept copies removed (the paths), and the live session's copy
    noted so that `keep` leaves it to go with the session. ValueError for an id that names no
    log file."""
    name = log_name(submission_id)
    if name is None:
        raise ValueError(f"no job log is named by submission id {submission_id!r}")
    stamp = _stamp(os.path.join(session_dir, "logs", name))
    if stamp is not None:
        with open(os.path.join(session_dir, FORGOTTEN), "a") as f:
            f.write(f"{name} {stamp[0]} {stamp[1]}\n")
    removed = []
    for path in glob.glob(os.path.join(glob.escape(_kept_dir(session_dir)), "*", name)):
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
        _remove_if_empty(os.path.dirname(path))
    return removed


def _stamp(path: str) -> tuple | None:
    """What tells a log apart from one written since: its mtime (ns) and size."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


def _forgotten(session_dir: str) -> dict:
    """{name: {(mtime_ns, size) of the log when its job was deleted, ...}}."""
    noted: dict = {}
    try:
        with open(os.path.join(session_dir, FORGOTTEN)) as f:
            lines = f.read().splitlines()
    except OSError:
        return noted
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            noted.setdefault(fields[0], set()).add((int(fields[1]), int(fields[2])))
    return noted


def _remove_if_empty(directory: str) -> None:
    try:
        os.rmdir(directory)
    except OSError:
        pass  # not empty, or gone


def find(session_dir: str, name: str) -> str | None:
    """The newest kept copy of job log `name` from this machine's earlier sessions (those
    under the same root as `session_dir`)."""
    if not is_job_log(name):
        return None
    root = os.path.dirname(session_dir.rstrip("/"))
    pattern = os.path.join(glob.escape(root), KEPT_DIR, "*", glob.escape(name))
    newest, newest_mtime = None, -1.0
    for path in glob.glob(pattern):
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        if mtime > newest_mtime:
            newest, newest_mtime = path, mtime
    return newest
