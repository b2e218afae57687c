"""Worker output on the driver, awaited where it arrives and read from capfd once.

Polling `capfd.readouterr()` while the driver's I/O thread prints loses lines: pytest reads the
capture file, seeks back and truncates it, and a line written in between is gone (a full CI run
once lost both lines a test waited for). So the tests wait at the driver's sink for the lines
they expect, and read what was printed once they are there.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager


class _Recorder:
    def __init__(self, core):
        self._core = core
        self._print = core._log_sink
        self._lines: list[str] = []
        self._arrived = threading.Condition()
        core._log_sink = self._sink

    def _sink(self, msg):
        self._print(msg)  # printed first: once a line is recorded, it is in capfd's file
        with self._arrived:
            self._lines.extend(f"{msg.prefix} {line}" for line in msg.lines)
            self._arrived.notify_all()

    def wait_for(self, *texts: str, timeout: float = 30.0) -> bool:
        """True once a line containing each of `texts` arrived, False after `timeout`."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: all(any(text in line for line in self._lines) for text in texts),
                timeout,
            )

    def restore(self):
        self._core._log_sink = self._print


@contextmanager
def worker_output():
    """Records the lines this driver prints for its workers (and its nodes' warnings)."""
    from zray._private.core import runtime

    recorder = _Recorder(runtime.core)
    try:
        yield recorder
    finally:
        recorder.restore()
