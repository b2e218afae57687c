"""Session bookkeeping: which processes and sessions count as alive."""

import os
import subprocess
import sys
import time

from zray._private.common import session


def test_an_unreaped_dead_process_is_not_alive():
    """`zray stop` counted SIGKILLed daemons that init had not reaped as running nodes, and
    their sessions as live ones."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and session._pid_alive(child.pid):
            time.sleep(0.02)  # it exits soon and stays a zombie: nobody waits for it yet
        assert not session._pid_alive(child.pid)
        assert os.path.exists(f"/proc/{child.pid}")  # still unreaped
        assert session._pid_alive(os.getpid())
    finally:
        child.wait()


def test_the_default_session_root_never_shadows_the_package(tmp_path):
    """A script run from the directory holding the default root must still import zray: a
    root named like the package (/tmp/zray) made `import zray` in /tmp a namespace package
    with nothing in it under an editable install (`pip install -e .`, as the README says)."""
    import dataclasses

    from zray._config import Config

    default = next(f.default for f in dataclasses.fields(Config) if f.name == "session_dir_root")
    (tmp_path / os.path.basename(default)).mkdir()  # the root, beside the script
    found = subprocess.run(
        [sys.executable, "-c", "import zray; print(zray.remote.__name__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.stdout.strip() == "remote", found.stderr


def test_removing_a_session_removes_its_nodes_spill_files_in_a_configured_dir(
    tmp_path, monkeypatch
):
    """A node SIGKILLed while it closed its spill threads left its files in the configured
    spill directory: removing the session removes them, and nothing of another session."""
    from zray._config import config

    spill_dir = tmp_path / "spill"
    monkeypatch.setattr(config, "spill_dir", str(spill_dir))
    gone, kept = "session_2026_1", "session_2026_2"
    for node in (f"{gone}-aaaa", f"{gone}-bbbb", f"{kept}-cccc"):
        (spill_dir / node).mkdir(parents=True)
        (spill_dir / node / "1").write_bytes(b"x")
    (tmp_path / gone).mkdir()
    session.remove_session(str(tmp_path / gone))
    assert sorted(os.listdir(spill_dir)) == [f"{kept}-cccc"]
