"""A process's connection to the head, which may go away and come back.

The head can restart (`zray start --head` on its durable state, same port; see
zray/_private/head/recovery.py). A node, driver or worker notices that it is gone when its
connection to the head breaks (ZeroMQ reports the disconnection) or, for a node, when the head's
`ClusterLoad` stops. From then on:

- the outbox to the head is replaced by a fresh one, whose first message is again our Hello (the
  new head must learn our address before it can answer anything), followed at once by the
  process's re-registration (`ResumeNode`, `ResumeJob`, or for a worker a plain question). Both
  wait in ZeroMQ's queue until the head listens again, so the re-registration is the first
  request the new head hears from us;
- calls that need the head wait for it (`Requests.call` asks `wait_deadline`), at most
  `head_reconnect_timeout_s` after it went away, then fail with `HeadUnavailableError`;
- once the re-registration is answered, the requests sent before the break and still unanswered
  are sent again with their sequence numbers (`Requests.replay`): their answers reach the
  callbacks that wait for them. The owner then re-subscribes what the head must push to it.

A broken connection that comes back to the same head takes the same road: the head answers a
second registration of a node or job it knows as the first.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

logger = logging.getLogger(__name__)


class HeadUnavailableError(TimeoutError):
    """The head went away and did not come back within head_reconnect_timeout_s."""


class HeadLink:
    def __init__(
        self,
        endpoint,
        requests,
        address: str,
        window_s: float,
        resume: Callable,
        log_level: int = logging.WARNING,
    ):
        """`resume(link)` sends the process's re-registration as a request (through
        `requests`) whose answer calls `link.restored()`. `log_level`: of the messages that
        the head went and came back (a worker's would reach its driver's terminal, once per
        worker: its node and driver say it once)."""
        self.endpoint = endpoint
        self.requests = requests
        self.address = address
        self.window_s = window_s
        self._resume = resume
        self.down_since = 0.0  # monotonic time the head went away; 0 while it is there
        self.restored_at = 0.0
        self.generation = 0  # bumped at each replaced connection
        self.restorations = 0
        self._expired = False
        self.log_level = log_level
        requests.link = self
        endpoint.outbox(address).watch_disconnects()

    def check(self, now: float) -> bool:
        """From the process's I/O loop: True if the head's connection broke since last asked
        (the link is then reset and the re-registration sent)."""
        box = self.endpoint._outboxes.get(self.address)
        if box is not None and box.disconnected():
            self.lost(now, "its connection broke")
            return True
        return False

    def lost(self, now: float, why: str) -> None:
        if not self.down_since:
            self.down_since = now
            self._expired = False
            logger.log(
                self.log_level,
                "the head at %s is gone (%s); waiting up to %gs for it to come back",
                self.address,
                why,
                self.window_s,
            )
        self.generation += 1
        self.endpoint.drop_outbox(self.address)
        self.endpoint.outbox(self.address).watch_disconnects()
        self._resume(self)

    def restored(self) -> int:
        """The head answered our re-registration: replays what it never answered."""
        if self.down_since:
            logger.log(
                self.log_level,
                "the head at %s is back after %.1fs",
                self.address,
                time.monotonic() - self.down_since,
            )
        self.down_since = 0.0
        self.restored_at = time.monotonic()
        self.restorations += 1
        return self.requests.replay(self.address, self.generation)

    def expired(self, now: float) -> bool:
        """True once, when the head has been away longer than the window."""
        if self.down_since and not self._expired and now - self.down_since > self.window_s:
            self._expired = True
            return True
        return False

    def wait_deadline(self, timeout: float) -> float | None:
        """How long a call to the head that timed out now may wait on: while the head is
        away, until the window ends; after it came back, its own timeout from then (its
        request was replayed). None: no longer."""
        now = time.monotonic()
        if self.down_since:
            give_up = self.down_since + self.window_s
            return give_up if give_up > now else None
        if self.restored_at and self.restored_at + timeout > now:
            return self.restored_at + timeout
        return None

    def unavailable(self, what: str) -> HeadUnavailableError:
        return HeadUnavailableError(
            f"{what}: the head at {self.address} went away "
            f"{time.monotonic() - self.down_since:.0f}s ago and has not come back "
            f"(zray waits head_reconnect_timeout_s={self.window_s:g}s for a restarted head; "
            f"restart it with `zray start --head` on its state, same port)"
        )
