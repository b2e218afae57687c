"""The threads of a threaded actor (max_concurrency > 1): up to `size` calls at once, with as
few thread wake-ups as that allows.

A ThreadPoolExecutor wakes a thread for every call. Under the GIL only one of them runs Python
at a time, so a burst of short calls paid a wake-up and a GIL hand-off each: 1:1 concurrent
actor calls ran at 60% of a plain actor's rate. Here a thread that finishes a call takes the
next one itself, and another thread is started or woken only when no thread is free to take a
queued call, or when calls are queued and none has started for STALL_S: then the running calls
are presumably blocked (sleeping, waiting on I/O or on each other), and more of them at once is
what they need. The owner calls `check` at least every `poll_timeout()` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

logger = logging.getLogger(__name__)

STALL_S = 0.001


class CallPool:
    def __init__(self, size: int, run, name: str):
        self._size = size
        self._run = run
        self._name = name
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: deque = deque()
        self._threads = 0
        self._running = 0  # threads inside a call
        self._searching = 0  # threads awake and about to look at the queue
        self._waiting = 0  # threads asleep in _wakeup
        self._last_start = 0.0
        self._open = True

    def submit(self, *args):
        with self._lock:
            self._queue.append(args)
            if self._searching == 0 and self._running == 0:
                self._add_searcher()

    def poll_timeout(self, default: float) -> float:
        """How long the owner may wait before the next `check`: STALL_S only while queued
        calls could still get a thread (a full pool of blocked calls needs no watching)."""
        return STALL_S if self._queue and self._running < self._size else default

    def check(self, now: float | None = None):
        """Gives queued calls another thread if none has started a call for STALL_S."""
        if not self._queue:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            if (
                self._queue
                and self._searching == 0
                and self._running < self._size
                and now - self._last_start >= STALL_S
            ):
                self._add_searcher()

    def close(self):
        with self._lock:
            self._open = False
            self._queue.clear()
            self._wakeup.notify_all()

    @property
    def threads(self) -> int:
        return self._threads

    def _add_searcher(self):
        """Wakes an idle thread, or starts one while fewer than `size` exist (lock held)."""
        if self._waiting:
            self._waiting -= (
                1  # counted here, not by the thread: a second call must not wake it again
            )
            self._searching += 1
            self._wakeup.notify()
        elif self._threads < self._size:
            self._threads += 1
            self._searching += 1
            threading.Thread(
                target=self._work, name=f"{self._name}-{self._threads}", daemon=True
            ).start()

    def _work(self):
        with self._lock:
            while self._open:
                if not self._queue:
                    self._searching -= 1
                    self._waiting += 1
                    self._wakeup.wait()  # whoever notifies moves us back to searching
                    continue
                args = self._queue.popleft()
                self._searching -= 1
                self._running += 1
                self._last_start = time.monotonic()
                self._lock.release()
                try:
                    self._run(*args)
                except BaseException:  # noqa: BLE001 - one call must not take the thread down
                    logger.exception("%s: call failed outside its own error handling", self._name)
                finally:
                    self._lock.acquire()
                    self._running -= 1
                    self._searching += 1
