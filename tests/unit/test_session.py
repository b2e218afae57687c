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
