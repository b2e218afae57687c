"""A head store writer the recovery test kills: opens the store named in argv, then runs the
JSON commands read from stdin, one a line, answering each on stdout once it is durable.

It loads zray/_private/head/store.py by its path, without importing zray: it starts in a tenth of
the time, and the store must not need the rest of the package to recover anyway.

Commands (bytes as hex; a value of null deletes):
  ["write", [[table, key, value], ...]]  -> "ok" once written
  ["hang", [[table, key, value], ...]]   -> "inside N" once the batch is applied but not committed
                                            (N: rows the transaction sees in SQLite, commands
                                            Redis queued); then it waits to be killed
  ["dump"]                               -> every table, as JSON
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time


def load_head_store():
    path = os.path.join(
        os.path.dirname(__file__), "..", "..", "zray", "_private", "head", "store.py"
    )
    spec = importlib.util.spec_from_file_location("head_store", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_store(H, how: dict):
    if how["kind"] == "sqlite":
        return H.SqliteStore(how["path"])
    return H.RedisStore(how["address"], how["password"], namespace=how["namespace"])


def decode(ops):
    return [(t, bytes.fromhex(k), None if v is None else bytes.fromhex(v)) for t, k, v in ops]


def hang_inside_a_batch(store, ops):
    """Applies `ops` inside a transaction that is never committed, the state a head killed in
    the middle of a commit leaves."""
    if hasattr(store, "_db"):
        db = store._db
        # A tiny page cache makes SQLite spill the batch's pages into the WAL before the
        # commit, so the crash leaves uncommitted frames there for recovery to ignore.
        db.execute("PRAGMA cache_size=1")
        db.execute("BEGIN IMMEDIATE")
        store._apply_many(db, ops)
        seen = db.execute("SELECT count(*) FROM head").fetchone()[0]  # inside the transaction
    else:
        # MULTI and the queued commands reach Redis; the EXEC never does.
        conn = store._client().connection_pool.get_connection()
        conn.send_command("MULTI")
        conn.read_response()
        seen = 0
        for table, key, value in ops:
            if value is None:
                conn.send_command("HDEL", store._hash(table), key)
            else:
                conn.send_command("HSET", store._hash(table), key, value)
            seen += conn.read_response() == b"QUEUED"
    print(f"inside {seen}", flush=True)
    time.sleep(60)  # killed long before; bounded in case the test died first
    sys.exit(1)


def main():
    H = load_head_store()
    store = open_store(H, json.loads(sys.argv[1]))
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command[0] == "write":
            store.write(decode(command[1]))
            print("ok", flush=True)
        elif command[0] == "hang":
            hang_inside_a_batch(store, decode(command[1]))
        elif command[0] == "dump":
            tables = {t: {k.hex(): v.hex() for k, v in store.scan(t)} for t in H.TABLES}
            print(json.dumps(tables), flush=True)
    store.close()


if __name__ == "__main__":
    main()
