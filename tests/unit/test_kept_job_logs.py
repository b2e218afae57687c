"""A submitted job's log outlives its session (zray/_private/common/kept_job_logs.py): moved
aside as the session is removed, and read by a later session's node under the same root."""

import os
import time

import pytest

from zray._config import config
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


def test_a_deleted_jobs_kept_copies_go_and_its_live_copy_goes_with_its_session(tmp_path):
    for index in range(2):
        session.remove_session(
            make_session(
                tmp_path,
                f"session_old_{index}",
                {"job-driver-gone.log": "old\n", "job-driver-other.log": "other\n"},
            )
        )
    live = make_session(
        tmp_path, "session_live_3", {"job-driver-gone.log": "live\n", "job-driver-b.log": "b\n"}
    )
    removed = kept_job_logs.forget(live, "gone")
    assert sorted(os.path.basename(os.path.dirname(p)) for p in removed) == [
        "session_old_0",
        "session_old_1",
    ]
    assert kept_job_logs.find(live, "job-driver-gone.log") is None
    assert kept_job_logs.find(live, "job-driver-other.log") is not None  # other jobs stay
    # As in Ray, the live session's copy is still read while the session lives...
    assert log_files.read(live, "job-driver-gone.log", 0)["data"] == b"live\n"
    # ...and goes with it, where the other jobs' logs are kept; but a job submitted anew under
    # a deleted job's id (Ray allows it) writes the file again, and that log is kept.
    kept_job_logs.forget(live, "b")
    with open(os.path.join(live, "logs", "job-driver-b.log"), "a") as f:
        f.write("b again\n")
    session.remove_session(live)
    later = make_session(tmp_path, "session_later_4", {})
    assert kept_job_logs.find(later, "job-driver-gone.log") is None
    assert log_files.read(later, "job-driver-b.log", 0)["data"] == b"b\nb again\n"
    with pytest.raises(ValueError, match="no job log is named"):
        kept_job_logs.forget(later, "../x")


def test_past_the_cap_the_least_recently_written_kept_logs_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "kept_job_logs_max_bytes", 250)
    for index in range(4):
        path = make_session(tmp_path, f"session_s_{index}", {f"job-driver-{index}.log": "x" * 100})
        stamp = time.time() + index * 10  # written in that order
        os.utime(os.path.join(path, "logs", f"job-driver-{index}.log"), (stamp, stamp))
        session.remove_session(path)
    kept = tmp_path / kept_job_logs.KEPT_DIR
    # 400 bytes were kept in all: the two oldest went (and their emptied directories).
    assert sorted(os.listdir(kept)) == ["session_s_2", "session_s_3"]
    assert kept_job_logs.prune(str(kept), 0) and os.listdir(kept) == []
