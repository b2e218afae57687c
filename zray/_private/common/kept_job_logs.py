"""Submitted jobs' logs outlive their session. A job's record outlives a head restart (the head
persists its KV), and Ray keeps its log readable too; but a zray session directory is removed
when its node stops or, after a crash, at the next start. So a session's
`logs/job-driver-<submission id>.log` files are moved, as the session is removed, to
`<session root>/job_logs/<session name>/`, and a node asked for a job's log it does not have
looks there (the newest such file wins: submission ids are unique within a cluster, not across
the clusters that share a machine's session root).

They are kept like Ray's `/tmp/ray/session_*` directories: until someone removes them.
"""

from __future__ import annotations

import glob
import logging
import os
import re

logger = logging.getLogger(__name__)

KEPT_DIR = "job_logs"
_JOB_LOG = re.compile(r"^job-driver-[^/]+\.log$")


def is_job_log(name: str) -> bool:
    return bool(_JOB_LOG.match(name))


def keep(session_dir: str) -> list:
    """Moves the session's job logs out of it, before it is removed; the paths they moved to."""
    logs = os.path.join(session_dir, "logs")
    try:
        names = [n for n in os.listdir(logs) if is_job_log(n)]
    except OSError:
        return []
    session_dir = session_dir.rstrip("/")
    target = os.path.join(os.path.dirname(session_dir), KEPT_DIR, os.path.basename(session_dir))
    kept = []
    for name in names:
        try:
            os.makedirs(target, exist_ok=True)
            os.replace(os.path.join(logs, name), os.path.join(target, name))
        except OSError as exc:  # a full disk must not stop the session's removal
            logger.warning("job log %s not kept: %s", name, exc)
            continue
        kept.append(os.path.join(target, name))
    return kept


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
