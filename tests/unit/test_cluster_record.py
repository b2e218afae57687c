"""The record of the cluster `zray start` started: it reads as absent once its node is gone."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from zray._private.common import cluster_record


def recorded(tmp_path, **changes):
    session_dir = tmp_path / "session_x"
    session_dir.mkdir(exist_ok=True)
    record = cluster_record.record_for("tcp://127.0.0.1:6380", str(session_dir), os.getpid())
    record = dataclasses.replace(record, **changes)
    cluster_record.write(record, [str(tmp_path)])
    return record


def test_live_record_reads_back_without_scheme(tmp_path):
    record = recorded(tmp_path)
    assert record.address == "127.0.0.1:6380"
    assert cluster_record.read(str(tmp_path)) == record
    assert oct(os.stat(tmp_path / cluster_record.RECORD_FILE).st_mode & 0o777) == "0o600"
    cluster_record.clear(str(tmp_path))
    assert cluster_record.read(str(tmp_path)) is None


def test_record_of_a_dead_or_reused_pid_or_a_removed_session_is_none(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    recorded(tmp_path, pid=child.pid)
    assert cluster_record.read(str(tmp_path)) is None
    record = recorded(tmp_path)
    recorded(tmp_path, started=record.started - 3600)  # our pid, another process's start
    assert cluster_record.read(str(tmp_path)) is None
    recorded(tmp_path, session_dir=str(tmp_path / "gone"))
    assert cluster_record.read(str(tmp_path)) is None


@pytest.mark.parametrize("content", ["", "{", "[]", json.dumps({"address": "x"})])
def test_unreadable_record_is_none(tmp_path, content):
    (tmp_path / cluster_record.RECORD_FILE).write_text(content)
    assert cluster_record.read(str(tmp_path)) is None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give the file to another user")
def test_another_users_record_is_ignored(tmp_path):
    recorded(tmp_path)
    os.chown(tmp_path / cluster_record.RECORD_FILE, 65534, 65534)
    assert cluster_record.read(str(tmp_path)) is None
