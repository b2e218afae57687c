"""When direct-connection messages leave and when their readers sleep: both are about the
wake-ups a message costs on two shared cores (docs/design.md, "Batched actor calls" and
"Spinning before sleeping").
"""

from __future__ import annotations

import os
import time

from zray._config import config

HOLD_S = 0.001  # longest a held send waits for its batch to fill when nobody gets


def spin(poll_now, seconds: float):
    """Calls `poll_now` (a poll with timeout 0) until it returns events or `seconds` pass, and
    returns what it last returned. Between polls the thread yields its CPU, so a spinner gives
    way to any process that has work, and each poll lets go of the GIL. Used just before a
    blocking poll, when what is waited for (the answer of a call, the next call of a caller
    in a loop) usually comes within a round trip: catching it awake saves the sender's
    wake-up and our context switch."""
    if seconds <= 0:
        return poll_now()
    deadline = time.perf_counter() + seconds
    while True:
        events = poll_now()
        if events or time.perf_counter() >= deadline:
            return events
        os.sched_yield()


def spin_seconds() -> float:
    return config.spin_wait_us / 1e6 if (os.cpu_count() or 1) > 1 else 0.0


class Batcher:
    """Owner side: writes calls pushed back to back in batches, one sendmsg per HOLD_MAX.

    A call's sendmsg wakes the worker, and on two shared cores that was a large part of an
    async call (`[a.f.remote() for _ in range(1000)]`). The first call of a streak goes out at
    once, so a call followed by its get (the sync pattern) is never held; the calls after it,
    pushed with no get or wait in between, are held on their connection until HOLD_MAX wait
    there, the next get or wait (`release`), or HOLD_S passes (the I/O thread, woken when a
    first call is held, calls `release_due`). Order per connection is kept throughout."""

    def __init__(self, wake_io_thread):
        self._wake = wake_io_thread
        self._streak = False
        self._connections: set = set()
        self.deadline = 0.0

    @property
    def holding(self) -> bool:
        return bool(self._connections)

    def send(self, connection, msg, payload) -> bool:
        hold = self._streak
        self._streak = True
        return connection.send(msg, payload=payload, hold=hold) and self._sent(connection, hold)

    def send_framed(self, connection, buffers: list) -> bool:
        """`send` of a message framed already (direct.Connection.send_framed)."""
        hold = self._streak
        self._streak = True
        return connection.send_framed(buffers, hold) and self._sent(connection, hold)

    def _sent(self, connection, hold: bool) -> bool:
        if hold and connection not in self._connections:
            first = not self._connections
            if first:
                self.deadline = time.monotonic() + HOLD_S  # before `holding` turns true
            self._connections.add(connection)
            if first:
                self._wake()
        return True

    def release(self):
        """Writes every held call and ends the streak (any thread)."""
        self._streak = False
        connections = self._connections
        while connections:
            try:
                connection = connections.pop()
            except KeyError:  # another thread took the last one
                return
            connection.release()

    def release_due(self, now: float):
        if self._connections and now >= self.deadline:
            self.release()
