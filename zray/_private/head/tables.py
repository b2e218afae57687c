"""The head's write-through: each change to its tables is written to the head store
(head_store.py) before the head answers or acts on it, so the store always holds what anyone
outside the head has been told.

Records are msgpack maps (the formats below are what a restarting head will read back):
- jobs: job id -> {driver_id, pid, namespace, start, alive}
- kv: namespace (utf-8) + b"\\0" + key -> value
- actors: actor id -> {spec, state, address, worker_id, lease_id, num_restarts, death_cause,
  error, error_text, no_restart}; actor_args: actor id -> [constructor frames]
- named_actors: namespace + b"\\0" + name (utf-8) -> actor id, while the actor is not dead
- placement_groups: group id -> {name, namespace, strategy, bundles, detached, job_id,
  soft_target, creator_actor, job_dead, nodes, state}; removed groups are deleted
- nodes: node id -> the node's record as GetNodes sends it
- kv key CREDENTIALS_KEY: {token, encrypt} of the cluster, so a head restarted on these tables
  admits the nodes and drivers that held on (never served by KvGet)

Writes are synchronous, one commit per change (or per actor-state batch): about 30 µs with
SQLite, a round trip with Redis (docs/benchmarks.md). Grouping the changes of a loop turn into
one commit would cost less, but needs the head's sends held until that commit.
"""

from __future__ import annotations

import logging
import time

import msgpack

from zray._private.head import store as H

logger = logging.getLogger(__name__)


CREDENTIALS_KEY = b"__zray_head__\0credentials"


def _pack(record) -> bytes:
    return msgpack.packb(record, use_bin_type=True)


class HeadTables:
    def __init__(self, store: H.HeadStore | None):
        self.store = store
        self._actor_records: dict[bytes, bytes] = {}  # last written: unchanged ones are skipped
        self.commits = 0
        self.commit_s = 0.0  # time the head's loop spent waiting for them

    @classmethod
    def open(cls, session_dir: str) -> HeadTables:
        """The store the configuration names (off: a HeadTables that writes nothing). Tables
        found in it were left by a head that did not shut down cleanly: `load()` reads them
        back and the new head resumes that cluster (head/recovery.py)."""
        from zray._config import config

        if not config.head_persistence or not (
            session_dir or config.head_state_path or config.redis_address
        ):
            return cls(None)
        store = H.open_store(
            session_dir=session_dir,
            state_path=config.head_state_path,
            redis_address=config.redis_address,
            redis_password=config.redis_password,
            redis_username=config.redis_username,
        )
        logger.info("head tables are written through to %s", store.description)
        return cls(store)

    def credentials(self) -> dict | None:
        """{token, encrypt} of the cluster whose tables these are, if any."""
        if self.store is None:
            return None
        raw = self.store.get("kv", CREDENTIALS_KEY)
        return msgpack.unpackb(raw) if raw is not None else None

    def save_credentials(self, token: str, encrypt: bool) -> None:
        if self.store is not None:
            self.store.put("kv", CREDENTIALS_KEY, _pack({"token": token, "encrypt": encrypt}))

    def load(self) -> dict[str, dict]:
        """The tables a previous head left, decoded ({} when there are none): jobs, nodes,
        actors, placement_groups map ids to records, actor_args to frame lists, kv and
        named_actors keep their raw keys and values."""
        if self.store is None:
            return {}
        raw = self.store.load()
        if not any(k != CREDENTIALS_KEY for rows in raw.values() for k in rows):
            return {}
        decoded: dict[str, dict] = {}
        for table, rows in raw.items():
            if table in ("kv", "named_actors"):
                decoded[table] = {k: v for k, v in rows.items() if k != CREDENTIALS_KEY}
            else:
                decoded[table] = {key: msgpack.unpackb(value) for key, value in rows.items()}
        # What is in the store needs no second write.
        self._actor_records.update(raw["actors"])
        return decoded

    def _commit(self, batch: H.Batch, actor_records: dict | None = None) -> None:
        if not batch.ops or self.store is None:
            return
        start = time.perf_counter()
        self.store.write(batch.ops)
        self.commit_s += time.perf_counter() - start
        self.commits += 1
        # Only now: a failed write must be retried by the next change, not skipped as written.
        self._actor_records.update(actor_records or {})

    def job(self, job_id: bytes, record: dict) -> None:
        batch = H.Batch()
        batch.put("jobs", job_id, _pack(record))
        self._commit(batch)

    def kv(self, namespace: str, key: bytes, value: bytes) -> None:
        batch = H.Batch()
        batch.put("kv", namespace.encode() + b"\0" + key, value)
        self._commit(batch)

    def kv_deleted(self, namespace: str, key: bytes) -> None:
        batch = H.Batch()
        batch.delete("kv", namespace.encode() + b"\0" + key)
        self._commit(batch)

    def node(self, record: dict) -> None:
        batch = H.Batch()
        batch.put("nodes", record["node_id"], _pack(record))
        self._commit(batch)

    def actor_created(self, manager, actor, frames: list) -> None:
        """A new actor, with its constructor's arguments, in one commit."""
        if self.store is None:
            return
        batch, records = H.Batch(), {}
        batch.put("actor_args", actor.actor_id, _pack(frames))
        self._actor(batch, manager, actor, records)
        self._commit(batch, records)

    def actors(self, manager, actor_ids) -> None:
        """The current records of `actor_ids` (an actor manager's), in one commit; records
        that did not change since they were last written are not written again."""
        if self.store is None:
            return
        batch, records = H.Batch(), {}
        for actor_id in actor_ids:
            actor = manager.actors.get(actor_id)
            if actor is not None:
                self._actor(batch, manager, actor, records)
        self._commit(batch, records)

    def _actor(self, batch: H.Batch, manager, actor, records: dict) -> None:
        record = _pack(
            {
                "spec": actor.spec,
                "state": actor.state,
                "address": actor.address,
                "worker_id": actor.worker_id,
                "lease_id": actor.lease_id,
                "num_restarts": actor.num_restarts,
                "death_cause": actor.death_cause,
                "error": actor.error,
                "error_text": actor.error_text,
                "no_restart": actor.no_restart,
            }
        )
        if self._actor_records.get(actor.actor_id) == record:
            return
        records[actor.actor_id] = record
        batch.put("actors", actor.actor_id, record)
        name = actor.spec.get("name")
        if name:
            # As the manager's name table has it now: a dead actor's name may be a new one's.
            namespace = actor.spec.get("namespace", "")
            key = namespace.encode() + b"\0" + name.encode()
            holder = manager.names.get((namespace, name))
            if holder is None:
                batch.delete("named_actors", key)
            else:
                batch.put("named_actors", key, holder)

    def placement_groups(self, manager, pg_ids) -> None:
        if self.store is None:
            return
        from zray._private.common import resources as R

        batch = H.Batch()
        for pg_id in pg_ids:
            group = manager.groups.get(pg_id)
            if group is None or group.state == "REMOVED":
                batch.delete("placement_groups", pg_id)
                continue
            batch.put(
                "placement_groups",
                pg_id,
                _pack(
                    {
                        "name": group.name,
                        "namespace": group.namespace,
                        "strategy": group.strategy,
                        "bundles": [R.to_floats(b) for b in group.bundles],
                        "detached": group.detached,
                        "job_id": group.job_id,
                        "soft_target": group.soft_target,
                        "creator_actor": group.creator_actor,
                        "job_dead": group.job_dead,
                        "nodes": group.nodes,
                        "state": group.state,
                    }
                ),
            )
        self._commit(batch)

    def stats(self) -> dict:
        return {
            "store": self.store.description if self.store is not None else "off",
            "commits": self.commits,
            "commit_s": round(self.commit_s, 6),
        }

    def clear(self) -> None:
        """The cluster ended on purpose: its tables go, nothing will resume them. A commit like
        any other, so it is done when this returns even if `close()` never runs."""
        if self.store is not None:
            self.store.clear()

    def close(self, clean: bool = False) -> None:
        """Releases the store (`clean`: clears it first). Closing SQLite checkpoints its WAL
        with an fsync, which waits behind every dirty page of the file system: seconds while a
        node spills, so a node clears first and closes last."""
        store, self.store = self.store, None
        if store is None:
            return
        try:
            if clean:
                store.clear()
        finally:
            store.close()
