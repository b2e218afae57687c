"""The disk side of spilling: threads that write spill files and read objects back, so the node's
loop never waits on a disk.

The loop hands over arena ranges it has marked as being spilled or restored (the object table
guarantees nobody reuses them meanwhile); the threads copy between the arena mapping and the
files with os.pwrite/os.preadv, which release the GIL for the whole copy. Writes and reads have
a thread each, so a restore someone waits for never queues behind a large fused write. Each
finished job is queued and announced by a byte on a pipe the loop polls.
"""

from __future__ import annotations

import logging
import mmap
import os
import queue
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_IO = 1 << 30  # per system call: Linux moves at most ~2 GiB per read or write


@dataclass
class Written:
    file_id: int
    ok: bool
    error: str
    seconds: float
    nbytes: int


@dataclass
class Read:
    object_id: bytes
    ok: bool
    error: str
    seconds: float
    nbytes: int


class SpillIO:
    def __init__(self, directory: str, arena_path: str, capacity: int):
        self.directory = directory
        self.arena_path = arena_path
        self.capacity = capacity
        self._arena = None
        self._arena_lock = threading.Lock()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._writes: queue.SimpleQueue = queue.SimpleQueue()
        self._reads: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(
                target=self._serve,
                args=(self._writes, self._write),
                name="zray-spill-write",
                daemon=True,
            ),
            threading.Thread(
                target=self._serve,
                args=(self._reads, self._read),
                name="zray-spill-read",
                daemon=True,
            ),
        ]
        self._started = False
        self.closed = False

    @property
    def fd(self) -> int:
        """Readable when finished jobs are waiting in completions()."""
        return self._wake_r

    def path_of(self, file_id: int) -> str:
        return os.path.join(self.directory, f"{file_id:08d}")

    def write(self, file_id: int, entries: list):
        """entries: [(object id, arena offset, size, file offset)], written into one file."""
        self._start()
        self._writes.put((file_id, entries))

    def read(self, object_id: bytes, file_id: int, file_offset: int, arena_offset: int, size: int):
        self._start()
        self._reads.put((object_id, file_id, file_offset, arena_offset, size))

    def completions(self) -> list:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def delete(self, file_id: int):
        try:
            os.unlink(self.path_of(file_id))
        except FileNotFoundError:
            pass

    def close(self, timeout: float = 5.0):
        """Stops the threads (a write in progress may take a moment) and closes the pipe."""
        if self.closed:
            return
        self.closed = True
        if self._started:
            self._writes.put(None)
            self._reads.put(None)
            deadline = time.monotonic() + timeout
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ------------------------------------------------------------------ threads

    def _start(self):
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def _view(self) -> memoryview:
        with self._arena_lock:
            if self._arena is None:
                fd = os.open(self.arena_path, os.O_RDWR)
                try:
                    self._arena = mmap.mmap(fd, self.capacity)
                finally:
                    os.close(fd)
            return memoryview(self._arena)

    def _serve(self, jobs: queue.SimpleQueue, run):
        while True:
            job = jobs.get()
            if job is None or self.closed:
                return
            start = time.perf_counter()
            try:
                nbytes = run(*job)
                result = (True, "", nbytes)
            except Exception as exc:  # a disk error fails the job, never the node
                logger.error("spill I/O failed: %s", exc)
                result = (False, str(exc), 0)
            seconds = time.perf_counter() - start
            kind = Written if run == self._write else Read
            self._done.put(kind(job[0], result[0], result[1], seconds, result[2]))
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass  # the pipe is full (the loop will drain it) or closed (shutting down)

    def _write(self, file_id: int, entries: list) -> int:
        os.makedirs(self.directory, exist_ok=True)
        path = self.path_of(file_id)
        arena = self._view()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        total = 0
        try:
            for _, offset, size, file_offset in entries:
                done = 0
                while done < size:
                    n = min(size - done, MAX_IO)
                    done += os.pwrite(
                        fd, arena[offset + done : offset + done + n], file_offset + done
                    )
                total += size
        except BaseException:
            os.close(fd)
            fd = -1
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
        finally:
            if fd >= 0:
                os.close(fd)
            arena.release()
        return total

    def _read(
        self, object_id: bytes, file_id: int, file_offset: int, arena_offset: int, size: int
    ) -> int:
        arena = self._view()
        fd = os.open(self.path_of(file_id), os.O_RDONLY)
        try:
            done = 0
            while done < size:
                n = min(size - done, MAX_IO)
                got = os.preadv(
                    fd, [arena[arena_offset + done : arena_offset + done + n]], file_offset + done
                )
                if got == 0:
                    raise OSError(f"spill file {self.path_of(file_id)} is truncated")
                done += got
        finally:
            os.close(fd)
            arena.release()
        return size
