"""A submitted job's log outlives its session (zray/_private/common/kept_job_logs.py): moved
aside as the session is removed, and read by a later session's node under the same root."""

import os
import time

from zray._private.common import kept_job_logs, session
from zray._private.node import log_files


def make_session(root, name: str, logs: dict) -> str:
    path = root / name
    os.makedirs(path / "logs")
    for file_name, text in logs.items():
        (path / "logs" / file_name).write_text(text)
    return str(path)


def test_a_removed_sessions_job_logs_are_read_by_a_later_session(tmp_path):
    old = make_session(
        tmp_path, "session_old_1", {"job-driver-a.log": "from a\n", "node.log": "node\n"}
    )
    new = make_session(tmp_path, "session_new_2", {})
    assert log_files.read(new, "job-driver-a.log", 0) is None
    session.remove_session(old)
    assert not os.path.exists(old)
    assert os.listdir(tmp_path / kept_job_logs.KEPT_DIR / "session_old_1") == ["job-driver-a.log"]
    assert log_files.read(new, "job-driver-a.log", 0)["data"] == b"from a\n"
    # Only job logs are kept, and a name outside the pattern is never looked for.
    assert log_files.read(new, "node.log", 0) is None
    assert kept_job_logs.find(new, "../session_old_1/job-driver-a.log") is None


def test_the_newest_kept_copy_wins_and_the_sessions_own_file_first(tmp_path):
    for index, text in enumerate(("first\n", "second\n")):
        old = make_session(tmp_path, f"session_old_{index}", {"job-driver-x.log": text})
        session.remove_session(old)
        stamp = time.time() + index * 10  # a later mtime whatever the clock's resolution
        kept = tmp_path / kept_job_logs.KEPT_DIR / f"session_old_{index}" / "job-driver-x.log"
        os.utime(kept, (stamp, stamp))
    new = make_session(tmp_path, "session_new_9", {})
    assert log_files.read(new, "job-driver-x.log", 0)["data"] == b"second\n"
    (tmp_path / "session_new_9" / "logs" / "job-driver-x.log").write_text("own\n")
    assert log_files.read(new, "job-driver-x.log", 0)["data"] == b"own\n"
