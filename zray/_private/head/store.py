"""Durable storage for the head's tables: one interface, two implementations.

The head keeps its tables (jobs, the KV store with the function registry, actors with their specs
and states, named actors, placement groups, node membership) in memory and writes every change
through to a `HeadStore`, so a restarted head can read them back. Keys and values are bytes: the
head encodes its records itself, the store only keeps them.

- `SqliteStore` (the default): one file, in WAL mode, from the standard library. With
  `synchronous=NORMAL` (Ray-like durability) a write acknowledged by `write()` survives the crash
  or SIGKILL of the head's process; a power loss or kernel crash may lose the last transactions
  before the next WAL checkpoint, never leaving a torn one. `synchronous=FULL` adds an fsync per
  commit, so it survives power loss too, at a higher cost (docs/benchmarks.md).
- `RedisStore`: one Redis hash per table, chosen as Ray chooses its external Redis
  (`RAY_REDIS_ADDRESS`, `--redis-password`). A write acknowledged by Redis survives the head's
  crash and its move to another machine; whether it survives a crash of Redis itself is Redis's
  persistence setting (`appendonly yes`, `appendfsync always` or `everysec`).

`write()` applies a group of changes atomically: all or none, after a crash as well. Each call is
one durable commit, whose cost dominates (tens of microseconds for SQLite, a round trip for
Redis), so the head groups the changes of one loop turn into one `write()` (`GroupCommit`) and
sends the answers that depend on them only after it returns.

This module imports only the standard library (redis lazily), so a test can load it in a bare
subprocess that it then kills mid-write.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from typing import Any, Callable, Iterator, Sequence

logger = logging.getLogger(__name__)

# actor_args: an actor's constructor arguments, written once, apart from its record that
# changes with every state.
TABLES = ("jobs", "kv", "actors", "actor_args", "named_actors", "placement_groups", "nodes")
SQLITE_FILE = "head_state.sqlite3"
# A WAL checkpoint fsyncs the database file: 10 ms or more, which SQLite's automatic ones would
# spend inside some unlucky write on the head's loop. A thread of the store's own does them.
CHECKPOINT_S = 1.0

# (table, key, value); a value of None deletes the key.
Op = tuple[str, bytes, "bytes | None"]


class StoreError(RuntimeError):
    """The head's durable state cannot be opened or written."""


def _check(table: str, key: bytes, value: bytes | None) -> Op:
    if table not in TABLES:
        raise ValueError(f"unknown head table {table!r}; the tables are {', '.join(TABLES)}")
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"a head table key is bytes, not {type(key).__name__}")
    if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"a head table value is bytes, not {type(value).__name__}")
    return table, bytes(key), None if value is None else bytes(value)


class Batch:
    """Changes collected to be written together by `HeadStore.batch()`."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.ops.append(_check(table, key, value))

    def delete(self, table: str, key: bytes) -> None:
        self.ops.append(_check(table, key, None))


class HeadStore(abc.ABC):
    """The head's tables, durably. Not thread-safe: the head calls it from its one loop."""

    description = ""

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.write([_check(table, key, value)])

    def delete(self, table: str, key: bytes) -> None:
        self.write([_check(table, key, None)])

    @contextlib.contextmanager
    def batch(self) -> Iterator[Batch]:
        """`with store.batch() as b: b.put(...)`: written at once when the block ends without an
        exception, not at all otherwise."""
        batch = Batch()
        yield batch
        if batch.ops:
            self._write(batch.ops)  # checked as they were added

    def write(self, ops: Sequence[Op]) -> None:
        """Applies `ops` in order, atomically; they are durable when this returns."""
        checked = [_check(*op) for op in ops]
        if checked:
            self._write(checked)

    @abc.abstractmethod
    def _write(self, ops: list[Op]) -> None: ...

    @abc.abstractmethod
    def get(self, table: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def scan(self, table: str) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of `table`, in key order, as of the call."""

    def load(self) -> dict[str, dict[bytes, bytes]]:
        """Every table, as a restarting head reads them back."""
        return {table: dict(self.scan(table)) for table in TABLES}

    def empty(self) -> bool:
        return not any(any(True for _ in self.scan(table)) for table in TABLES)

    def clear(self) -> None:
        """Deletes every table: a cluster that ended cleanly leaves nothing to resume."""
        self.write([(table, key, None) for table in TABLES for key, _ in self.scan(table)])

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the store; idempotent. Acknowledged writes are already durable."""

    def __enter__(self) -> HeadStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStore(HeadStore):
    def __init__(self, path: str, synchronous: str = "NORMAL"):
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(
                f"synchronous={synchronous!r}: NORMAL, FULL or EXTRA (OFF is not durable)"
            )
        self.path = os.path.abspath(path)
        self.description = f"SQLite at {self.path}"
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # Two heads writing one state would each believe its own tables: the second is refused.
        self._lock_fd: int | None = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StoreError(f"the head state {self.path} is in use by another head")
        # The tables hold pickled functions and the cluster's token: the owner's alone (the
        # WAL and shared-memory files SQLite makes beside it take the same mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            # isolation_level=None: no implicit transactions, so each lone write commits at once
            # and a batch is exactly the BEGIN..COMMIT written below.
            self._db: sqlite3.Connection | None = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(
                    f"{self.path}: SQLite refused WAL mode (got {mode!r}); is it "
                    f"on a network file system?"
                )
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS head (tbl TEXT NOT NULL, key BLOB NOT "
                "NULL, value BLOB NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"cannot open the head state {self.path}: {exc}")
        except BaseException:
            self.close()
            raise
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, daemon=True, name="head-state-checkpoint"
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        # Its own connection: sqlite3 releases the GIL while it fsyncs, and a PASSIVE
        # checkpoint never blocks the writer.
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            while not self._stop.wait(CHECKPOINT_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or full disk: the WAL keeps the data
                    logger.warning("checkpointing the head state %s: %s", self.path, exc)
        finally:
            db.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"the head state {self.path} is closed")
        return self._db

    def _write(self, ops: list[Op]) -> None:
        db = self._conn()
        try:
            if len(ops) == 1:  # one statement is its own transaction: no BEGIN/COMMIT trip
                self._apply(db, *ops[0])
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                self._apply_many(db, ops)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"writing the head state {self.path} failed: {exc}")

    @staticmethod
    def _apply_many(db: sqlite3.Connection, ops: list[Op]) -> None:
        # Runs of puts, and of deletes, go as one executemany each (a third of the cost of a
        # statement per row); the runs keep the order, so a put and a delete of one key in one
        # batch end as written.
        start = 0
        while start < len(ops):
            deleting = ops[start][2] is None
            end = start
            while end < len(ops) and (ops[end][2] is None) == deleting:
                end += 1
            if deleting:
                db.executemany(
                    "DELETE FROM head WHERE tbl = ? AND key = ?",
                    [(t, k) for t, k, _ in ops[start:end]],
                )
            else:
                db.executemany(
                    "INSERT OR REPLACE INTO head (tbl, key, value) VALUES (?, ?, ?)", ops[start:end]
                )
            start = end

    @staticmethod
    def _apply(db: sqlite3.Connection, table: str, key: bytes, value: bytes | None) -> None:
        if value is None:
            db.execute("DELETE FROM head WHERE tbl = ? AND key = ?", (table, key))
        else:
            db.execute(
                "INSERT OR REPLACE INTO head (tbl, key, value) VALUES (?, ?, ?)",
                (table, key, value),
            )

    def get(self, table: str, key: bytes) -> bytes | None:
        table, key, _ = _check(table, key, None)
        row = (
            self._conn()
            .execute("SELECT value FROM head WHERE tbl = ? AND key = ?", (table, key))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def scan(self, table: str) -> Iterator[tuple[bytes, bytes]]:
        _check(table, b"", None)
        # Read whole: a cursor left open across later writes on the same connection would see
        # some of them. The head's tables are metadata, small enough to hold.
        rows = (
            self._conn()
            .execute("SELECT key, value FROM head WHERE tbl = ? ORDER BY key", (table,))
            .fetchall()
        )
        return iter([(bytes(k), bytes(v)) for k, v in rows])

    def clear(self) -> None:
        self._conn().execute("DELETE FROM head")

    def close(self) -> None:
        stop, checkpointer = getattr(self, "_stop", None), getattr(self, "_checkpointer", None)
        if stop is not None and checkpointer is not None:
            stop.set()
            checkpointer.join(10)
        db, self._db = getattr(self, "_db", None), None
        if db is not None:
            db.close()
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


class RedisStore(HeadStore):
    def __init__(
        self,
        address: str,
        password: str = "",
        username: str = "",
        namespace: str = "default",
        timeout_s: float = 10.0,
    ):
        try:
            import redis
        except ImportError:
            raise StoreError(
                "a Redis address was given (RAY_REDIS_ADDRESS) but the redis "
                "client is not installed: pip install 'zray[redis]'"
            )
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        if "," in address:
            raise StoreError(f"Redis address {address!r}: zray uses one Redis server, not shards")
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        # A blip (a failover, a dropped connection) is retried twice, quickly; the client's
        # default backs off for seconds, also on a wrong password, which no retry mends.
        kwargs: dict[str, Any] = {
            "password": password or None,
            "username": username or None,
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        }
        if "://" in address:
            client = redis.Redis.from_url(address, **kwargs)
        else:
            host, sep, port = address.rpartition(":")
            if not sep or not port.isdigit():
                raise StoreError(f"Redis address {address!r} is not HOST:PORT")
            client = redis.Redis(host=host.strip("[]"), port=int(port), **kwargs)
        self.description = f"Redis at {address} (namespace {namespace!r})"
        self._prefix = f"zray:{namespace}:".encode()
        self._redis: Any = client
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            raise StoreError(f"cannot reach Redis at {address}: {exc}")
        self._warn_if_not_persistent(redis.ResponseError)

    def _warn_if_not_persistent(self, response_error: type[BaseException]) -> None:
        try:
            aof = self._redis.config_get("appendonly").get("appendonly")
            save = self._redis.config_get("save").get("save")
        except response_error:  # managed Redis often disables CONFIG: it knows its durability
            return
        if aof == "no" and not save:
            logger.warning(
                "%s keeps no data on disk (appendonly no, no save points): the "
                "head's state survives a head restart, not a Redis restart",
                self.description,
            )

    def _client(self) -> Any:
        if self._redis is None:
            raise StoreError(f"{self.description} is closed")
        return self._redis

    def _hash(self, table: str) -> bytes:
        return self._prefix + table.encode()

    def _write(self, ops: list[Op]) -> None:
        try:
            if len(ops) == 1:  # one command is atomic by itself: no MULTI/EXEC
                table, key, value = ops[0]
                if value is None:
                    self._client().hdel(self._hash(table), key)
                else:
                    self._client().hset(self._hash(table), key, value)
                return
            pipe = self._client().pipeline(transaction=True)
            for table, key, value in ops:
                if value is None:
                    pipe.hdel(self._hash(table), key)
                else:
                    pipe.hset(self._hash(table), key, value)
            pipe.execute()
        except self._redis_errors as exc:
            raise StoreError(f"writing the head state to {self.description} failed: {exc}")

    def get(self, table: str, key: bytes) -> bytes | None:
        table, key, _ = _check(table, key, None)
        try:
            value = self._client().hget(self._hash(table), key)
        except self._redis_errors as exc:
            raise StoreError(f"reading the head state from {self.description} failed: {exc}")
        return None if value is None else bytes(value)

    def scan(self, table: str) -> Iterator[tuple[bytes, bytes]]:
        _check(table, b"", None)
        try:
            rows = self._client().hgetall(self._hash(table))  # one reply: a consistent snapshot
        except self._redis_errors as exc:
            raise StoreError(f"reading the head state from {self.description} failed: {exc}")
        return iter(sorted((bytes(k), bytes(v)) for k, v in rows.items()))

    def clear(self) -> None:
        self._client().delete(*[self._hash(t) for t in TABLES])

    def close(self) -> None:
        client, self._redis = getattr(self, "_redis", None), None
        if client is not None:
            client.close()


class GroupCommit:
    """Changes of one loop turn, written by one `flush()`; answers that must not go out before
    their change is durable wait in `after_flush`. The head calls `flush()` at the end of every
    turn, so a change waits at most one turn and a burst of N changes costs one commit."""

    def __init__(self, store: HeadStore):
        self.store = store
        self._ops: list[Op] = []
        self._after: list[Callable[[], None]] = []

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._ops.append(_check(table, key, value))

    def delete(self, table: str, key: bytes) -> None:
        self._ops.append(_check(table, key, None))

    def after_flush(self, callback: Callable[[], None]) -> None:
        self._after.append(callback)

    def pending(self) -> int:
        return len(self._ops)

    def flush(self) -> None:
        ops, self._ops = self._ops, []
        after, self._after = self._after, []
        if ops:
            self.store._write(ops)  # checked as they were added
        for callback in after:
            callback()


def open_store(
    *,
    session_dir: str = "",
    state_path: str = "",
    redis_address: str = "",
    redis_password: str = "",
    redis_username: str = "",
    namespace: str = "default",
) -> HeadStore:
    """Redis when an address is given (as Ray picks its external Redis), else SQLite at
    `state_path`, or in the session directory when no path is given."""
    if redis_address:
        return RedisStore(redis_address, redis_password, redis_username, namespace)
    if not state_path:
        if not session_dir:
            raise ValueError("open_store needs a state path or a session directory")
        state_path = os.path.join(session_dir, SQLITE_FILE)
    elif os.path.isdir(state_path):
        state_path = os.path.join(state_path, SQLITE_FILE)
    return SqliteStore(state_path)
