"""Log rotation with Ray's variables: sizes, names, backup count, bad values."""

import logging
import os
import subprocess
import sys

from zray._config import Config
from zray._private.common import log_rotation
from zray._private.common.log_rotation import RotatingFile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sizes(directory) -> dict:
    return {name: os.path.getsize(directory / name) for name in sorted(os.listdir(directory))}


def test_a_file_past_the_limit_is_rotated_keeping_the_backup_count(tmp_path):
    log = RotatingFile(str(tmp_path / "worker.out"), 100, 2)
    for i in range(7):
        log.write(bytes([ord("a") + i]) * 60)
    log.close()
    # Every write of 60 bytes after the first would pass 100: each starts a new file.
    assert sizes(tmp_path) == {"worker.out": 60, "worker.out.1": 60, "worker.out.2": 60}
    assert (tmp_path / "worker.out").read_bytes() == b"g" * 60
    assert (tmp_path / "worker.out.2").read_bytes() == b"e" * 60


def test_a_backup_count_of_zero_never_rotates_and_a_file_reopened_keeps_its_size(tmp_path):
    log = RotatingFile(str(tmp_path / "a.out"), 10, 0)
    log.write(b"x" * 50)
    log.close()
    assert sizes(tmp_path) == {"a.out": 50}
    log = RotatingFile(str(tmp_path / "a.out"), 60, 1)
    log.write(b"y" * 20)  # 50 + 20 > 60: rotated first
    log.close()
    assert sizes(tmp_path) == {"a.out": 20, "a.out.1": 50}


def test_the_current_name_never_goes_missing_while_a_file_rotates(tmp_path):
    # get_log(pid=...) looks a worker's output up by its current name while the worker's
    # forwarding thread may be rotating it: the name must name a file throughout.
    import threading

    path = str(tmp_path / "worker-1.out")
    log = RotatingFile(path, 200, 2)
    done, missing = threading.Event(), []

    def look():
        while not done.is_set():
            try:
                with open(path, "rb"):
                    pass
            except FileNotFoundError:
                missing.append(1)

    reader = threading.Thread(target=look)
    reader.start()
    try:
        for i in range(3_000):
            log.write(b"%04d " % i + b"x" * 95 + b"\n")
    finally:
        done.set()
        reader.join(10)
        log.close()
    assert not missing
    assert sorted(os.listdir(tmp_path)) == ["worker-1.out", "worker-1.out.1", "worker-1.out.2"]
    assert (tmp_path / "worker-1.out").read_bytes().startswith(b"2999 ")  # a line a file


def test_without_hard_links_a_rotation_renames_and_one_backup_is_replaced(tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    log = RotatingFile(str(tmp_path / "a.out"), 10, 1)
    for letter in b"abc":
        log.write(bytes([letter]) * 8)
    log.close()
    assert sizes(tmp_path) == {"a.out": 8, "a.out.1": 8}
    assert (tmp_path / "a.out.1").read_bytes() == b"b" * 8


def test_a_log_listing_skips_the_hidden_file_a_rotation_is_making(tmp_path):
    from zray._private.node import log_files

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker-1.out").write_bytes(b"x")
    (tmp_path / "logs" / ".worker-1.out.rotating").write_bytes(b"")
    assert [name for name, _, _ in log_files.listing(str(tmp_path))] == ["worker-1.out"]


class _Said(logging.Handler):
    def __init__(self):
        super().__init__()
        self.text = ""

    def emit(self, record):
        self.text += record.getMessage() + "\n"


def test_rays_variables_and_their_defaults():
    def settings(**environ):
        return log_rotation.settings(Config.from_env(environ))

    # On the config's own logger: other tests may stop zray's loggers from propagating.
    said = _Said()
    logging.getLogger("zray._config").addHandler(said)

    assert settings() == (512 * 1024 * 1024, 5)
    assert settings(RAY_ROTATION_MAX_BYTES="1000", RAY_ROTATION_BACKUP_COUNT="3") == (1000, 3)
    # A malformed value of Ray's variable is said, and the default used (Ray's env_integer).
    assert settings(RAY_ROTATION_MAX_BYTES="lots", RAY_ROTATION_BACKUP_COUNT="3") == (
        512 * 1024 * 1024,
        3,
    )
    logging.getLogger("zray._config").removeHandler(said)
    assert "RAY_ROTATION_MAX_BYTES='lots' is not a int" in said.text
    assert settings(ZRAY_ROTATION_MAX_BYTES="10", RAY_ROTATION_MAX_BYTES="1000")[0] == 10


def test_the_nodes_stderr_is_rotated_when_checked(tmp_path):
    script = f"""
import os, sys
from zray._private.common.log_rotation import RotatingStderr
rotation = RotatingStderr({str(tmp_path / "node.log")!r}, 100, 2)
for line in range(3):
    os.write(2, b"z" * 150)
    rotation._next_check = 0.0
    rotation.tick(1.0)
os.write(2, b"last")
"""
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, env=env)
    assert sizes(tmp_path) == {"node.log": 4, "node.log.1": 150, "node.log.2": 150}


def test_many_lines_written_at_once_are_split_at_line_ends(tmp_path):
    log = RotatingFile(str(tmp_path / "w.out"), 100, 3)
    log.write(b"".join(b"%02d" % i + b"-" * 27 + b"\n" for i in range(10)))  # 10 lines of 30
    log.write(b"L" * 250 + b"\n")  # longer than the limit: a file of its own
    log.close()
    assert sizes(tmp_path) == {"w.out": 251, "w.out.1": 30, "w.out.2": 90, "w.out.3": 90}
    assert (tmp_path / "w.out.1").read_bytes().startswith(b"09")
