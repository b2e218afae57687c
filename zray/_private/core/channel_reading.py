"""How a core worker reads its direct connections (zray/_private/wire/direct.py): the I/O thread
polls them, unless a thread blocked in get or wait reads them itself.

Whoever holds `_channel_reader` reads: the I/O thread, or a blocked thread, which then needs no
hand-off from the I/O thread (the answer wakes the thread that wants it, not the I/O thread,
which would then wake it: two wake-ups on two shared cores). The I/O thread parks the
connections (stops polling them) while a blocked thread reads, and takes them back at its next
tick. A mixin of CoreWorker, which owns the state it uses.
"""

from __future__ import annotations

import logging
import select
import threading
import time

import zmq

from zray._private.core.plain_calls import answer_plain, answer_plain_task
from zray._private.wire import direct, pacing

logger = logging.getLogger(__name__)

# A get still waiting for more than GATHER_ABOVE values, when no task of ours is queued or
# running (a task's answer frees the push of the next, which must not wait), sleeps GATHER_S
# before each read of its connections: a worker answers calls one sendmsg each, as it ends
# them, and a getter that caught each one (spinning, or woken by it) spent a poll, a recv and
# its decoding loop per answer; after the sleep one recv takes all that came meanwhile.
GATHER_ABOVE = 16
GATHER_S = 0.0002


class ChannelReading:
    def _wake_readers(self):
        """A connection was opened or its sends queued up: whoever reads must look again."""
        self._io_waker.wake()
        self._reader_waker.wake()

    def _take_up_channels(self, poller):
        """Polls connections opened (or backlogged) by other threads since the last wake, and
        takes all of them back if a reader asked for that."""
        self._io_waker.drain()
        changes = self.channels.changes
        if self._channels_parked:
            changes.clear()  # all are registered when the I/O thread takes them back
            self._unpark_channels(poller)
            return
        while changes:
            connection = changes.popleft()
            if connection.fd not in self.channels.by_fd:
                continue
            if connection.closed:
                # A get read its end before we ever polled it: no event will come for it,
                # so the next tick closes it (only while no get reads the connections).
                self._closed_unpolled = True
                continue
            self._register_channel(poller, connection)

    def _register_channel(self, poller, connection):
        flags = zmq.POLLIN | (zmq.POLLOUT if connection.backlogged else 0)
        poller.register(connection.fd, flags)  # registering again updates the flags
        self._polled.add(connection.fd)

    def _unpoll(self, poller, fd: int):
        if fd in self._polled:
            self._polled.discard(fd)
            poller.unregister(fd)

    def _park_channels(self, poller):
        for fd in self._polled:
            poller.unregister(fd)
        self._polled.clear()
        self._channels_parked = True

    def _unpark_channels(self, poller):
        """Polls the connections again after a get read them, and closes those that ended
        meanwhile (or before they were ever polled). Only while no get reads them: closing
        a socket a reader still polls could hand its fd number to a new connection."""
        if not (self._channels_parked or self._closed_unpolled) or not self._channel_reader.acquire(
            False
        ):
            return
        try:
            self._channels_parked = self._closed_unpolled = False
            for connection in list(self.channels.by_fd.values()):
                if connection.closed:  # a reader saw it end; closing is ours
                    self._unpoll(poller, connection.fd)
                    self.channels.forget(connection)
                else:
                    self._register_channel(poller, connection)
        finally:
            self._channel_reader.release()

    def _read_while_blocked(self, waiter, timeout: float):
        """memory_store.wait's block: a thread waiting for results reads the direct
        connections itself, so an answer wakes the thread that wants it rather than the I/O
        thread, which would then wake this one (two wake-ups on two shared cores). Only one
        thread reads at a time; the I/O thread stays out while one does (it parks the
        connections when it sees one) and takes them back at its next tick."""
        channels = self.channels
        me = threading.get_ident()
        nested = self._channel_reader_ident == me
        # A worker's executing thread also watches for tasks pushed behind its blocked one,
        # to hand them back (worker/hand_back.py).
        hand_back = self.hand_back
        if hand_back is not None and not hand_back.applies():
            hand_back = None
        if (not channels.by_fd and hand_back is None) or not (
            nested or self._channel_reader.acquire(timeout=0.002)
        ):
            waiter.sleep(timeout)
            return
        self._channel_reader_ident = me
        deadline = time.monotonic() + timeout
        waiter.wake = self._wake_reader
        try:
            while not waiter.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                poll = select.poll()
                poll.register(self._reader_waker.fd, select.POLLIN)
                if hand_back is not None:
                    poll.register(hand_back.fd, select.POLLIN)
                watched = {}
                for connection in list(channels.by_fd.values()):
                    if not connection.closed:
                        watched[connection.fd] = connection
                        poll.register(
                            connection.fd,
                            select.POLLIN | (select.POLLOUT if connection.backlogged else 0),
                        )
                if waiter.needed > GATHER_ABOVE and self._only_actor_calls():
                    # Many answers still to come, one sendmsg each: read them in batches
                    # rather than waking (or spinning) for each (see GATHER_S).
                    time.sleep(min(GATHER_S, remaining))
                    events = None
                elif self._spin_s:
                    events = pacing.spin(lambda: poll.poll(0), min(self._spin_s, remaining))
                else:
                    events = None
                for fd, event in events or poll.poll(remaining * 1000):
                    connection = watched.get(fd)
                    if connection is None:
                        if hand_back is not None and fd == hand_back.fd:
                            hand_back.serve()
                        else:
                            self._reader_waker.drain()
                        continue
                    if event & select.POLLOUT:
                        connection.flush()
                    if event & (select.POLLIN | select.POLLERR | select.POLLHUP):
                        self._read_channel(connection)
        finally:
            waiter.wake = None
            if not nested:
                self._channel_reader_ident = None
                self._channel_reader.release()
                if self._channels_parked and self.memory_store.has_other_waiters():
                    self._io_waker.wake()  # others still wait: the I/O thread reads for them

    def _only_actor_calls(self) -> bool:
        """No task of ours is queued or running: none waits for an answer to be pushed."""
        submitter = self.submitter
        return submitter is None or not submitter.tasks

    def _wake_reader(self):
        """Wakes the thread reading in _read_while_blocked, unless it is this one: it stored
        the answer itself and sees that at once (a byte to its own pipe cost it a second
        poll, and a read to drain it, on the next get)."""
        if threading.get_ident() != self._channel_reader_ident:
            self._reader_waker.wake()

    def _read_channel(self, connection):
        """Reads and handles what a direct connection holds (the channel reader only). One
        that ended is only marked closed: the I/O thread closes it (it may still poll the fd)."""
        messages = connection.read()
        if connection.failure:
            logger.warning("closing a direct connection: %s", connection.failure)
        if not messages:
            return
        if len(messages) > 1:
            # Answers read together: the pushes they free up (the next pipelined tasks) go
            # out together too, one sendmsg per worker instead of one each (see `push`).
            self._burst_thread = threading.get_ident()
        try:
            for frames in messages:
                if answer_plain(self, frames) or answer_plain_task(self, frames):
                    continue
                decoded = direct.decode(frames)
                if decoded is not None:
                    msg, seq, flags, payload = decoded
                    self._dispatch(b"", msg, seq, flags, payload)
        finally:
            if self._burst_thread is not None:
                self._burst_thread = None
                self._release_burst()

    def _release_burst(self):
        """Writes the pushes held during a burst (at its end, or at a get/wait inside it,
        which may wait for them)."""
        held, self._burst_held = self._burst_held, []
        for connection in held:
            connection.release()

    def _serve_channel(self, poller, connection, event):
        if event & zmq.POLLOUT and not connection.flush():
            self._register_channel(poller, connection)  # drops POLLOUT: nothing waits
        if event & (zmq.POLLIN | zmq.POLLERR) and not connection.closed:
            self._read_channel(connection)
        if connection.closed:
            self._unpoll(poller, connection.fd)
            self.channels.forget(connection)
