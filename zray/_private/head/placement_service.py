"""The head's placement group service: messages in, the state machine's instructions out.

Mixed into HeadService (head.py), whose node table, endpoint and actor manager it uses. The
decisions are in placement_groups.py; this module only moves messages and keeps the head's
node records in step with what the groups took, so actors placed in a bundle find it at once.
"""

from __future__ import annotations

import logging
import time

from zray._private.head import actor_manager as A
from zray._private.head import placement_groups as G
from zray._private.wire import protocol as P
from zray._private.common import resources as R

logger = logging.getLogger(__name__)

MAX_WAIT_S = 3600.0


class PlacementGroupHandlers:
    def _init_placement_groups(self):
        self.placement = G.PlacementGroupManager()
        self.pg_waiters: dict[bytes, list] = {}  # pg id -> [(identity, seq, deadline)]

    # ------------------------------------------------------------------ requests

    def on_CreatePlacementGroup(self, identity, msg: P.CreatePlacementGroup, seq):
        try:
            bundles = [R.to_units(b) for b in msg.bundles]
            instructions = self.placement.create(
                msg.pg_id,
                msg.name,
                msg.namespace,
                msg.strategy,
                bundles,
                msg.detached,
                msg.job_id,
                msg.soft_target,
                time.monotonic(),
                msg.creator_actor,
            )
        except (TypeError, ValueError) as exc:
            self.endpoint.reply(identity, P.Error("ValueError", str(exc)), seq)
            return
        self.tables.placement_groups(self.placement, [msg.pg_id])
        self.endpoint.reply(identity, P.Ok(0), seq)
        self._placement_instructions(instructions)

    def on_RemovePlacementGroup(self, identity, msg: P.RemovePlacementGroup, seq):
        self._placement_instructions(self.placement.remove(msg.pg_id, time.monotonic()))
        if seq:
            self.endpoint.reply(identity, P.Ok(0), seq)

    def on_WaitPlacementGroup(self, identity, msg: P.WaitPlacementGroup, seq):
        group = self.placement.groups.get(msg.pg_id)
        if group is None or group.state in (G.CREATED, G.REMOVED) or msg.timeout_s == 0:
            state = group.state if group is not None else G.REMOVED
            self.endpoint.reply(
                identity, P.PlacementGroupReady(msg.pg_id, state == G.CREATED, state), seq
            )
            return
        wait_s = MAX_WAIT_S if msg.timeout_s < 0 else min(msg.timeout_s, MAX_WAIT_S)
        self.pg_waiters.setdefault(msg.pg_id, []).append((identity, seq, time.monotonic() + wait_s))

    def on_GetPlacementGroups(self, identity, msg: P.GetPlacementGroups, seq):
        if msg.pg_id:
            groups = [self.placement.groups.get(msg.pg_id)]
        elif msg.name:
            groups = [self.placement.lookup(msg.namespace, msg.name)]
        else:
            groups = list(self.placement.groups.values())
        rows = [self.placement.table_entry(g) for g in groups if g is not None]
        self.endpoint.reply(identity, P.PlacementGroupTable(rows), seq)

    def on_BundlesPrepared(self, identity, msg: P.BundlesPrepared, seq):
        pass  # answers arrive through the request callbacks (_send_prepare)

    # ------------------------------------------------------------------ events from the head

    def _placement_node_update(self, node):
        self._placement_instructions(
            self.placement.node_update(
                node.node_id,
                R.from_wire(node.resources),
                R.from_wire(node.available or node.resources),
                time.monotonic(),
            )
        )

    def _placement_node_dead(self, node_id: bytes):
        self._placement_instructions(self.placement.node_dead(node_id, time.monotonic()))

    def _placement_job_dead(self, job_id: bytes):
        self._placement_instructions(self.placement.job_dead(job_id, time.monotonic()))

    def _placement_creators_check(self):
        """Groups made by an actor go when it is dead and so is its job (Ray's rule)."""
        for actor_id in list(self.placement.creators):
            actor = self.actors.actors.get(actor_id)
            if actor is None or actor.state == A.DEAD:
                self._placement_instructions(self.placement.actor_dead(actor_id, time.monotonic()))

    def _placement_tick(self, now: float):
        self._placement_instructions(self.placement.tick(now))
        for pg_id, waiters in list(self.pg_waiters.items()):
            keep = []
            for identity, seq, deadline in waiters:
                if deadline <= now:
                    group = self.placement.groups.get(pg_id)
                    self.endpoint.reply(
                        identity,
                        P.PlacementGroupReady(pg_id, False, group.state if group else G.REMOVED),
                        seq,
                    )
                else:
                    keep.append((identity, seq, deadline))
            if keep:
                self.pg_waiters[pg_id] = keep
            else:
                del self.pg_waiters[pg_id]

    # ------------------------------------------------------------------ instructions

    def _placement_instructions(self, instructions):
        changed = False
        touched = {ins.pg_id for ins in instructions if type(ins) is not G.Infeasible}
        if touched:  # before any node or waiter hears of the change
            self.tables.placement_groups(self.placement, touched)
        for ins in instructions:
            kind = type(ins)
            if kind is G.Prepare:
                self._send_prepare(ins)
            elif kind is G.Commit:
                changed = True
                self._send_to_node(
                    ins.node_id, P.CommitBundles(ins.pg_id, [index for index, _ in ins.bundles])
                )
            elif kind is G.Return:
                changed = changed or ins.committed
                self._send_to_node(
                    ins.node_id, P.ReturnBundles(ins.pg_id, [index for index, _ in ins.bundles])
                )
            elif kind is G.Created:
                self._answer_pg_waiters(ins.pg_id, True, G.CREATED)
            elif kind is G.Removed:
                self._kill_group_actors(ins.pg_id)
                self._answer_pg_waiters(ins.pg_id, False, G.REMOVED)
            elif kind is G.Infeasible:
                self._warn_infeasible_group(ins)
        if changed:
            self._sync_node_records()
            self._load_changed = True
            self._retry_actor_placements()  # actors waiting for a bundle

    def _send_prepare(self, ins: G.Prepare):
        node = self.nodes.get(ins.node_id)
        if node is None or not node.alive:
            return  # the attempt times out, or the node's death aborts it first
        bundles = [[index, R.to_floats(units)] for index, units in ins.bundles]

        def on_reply(reply, payload):
            ok = isinstance(reply, P.BundlesPrepared) and reply.ok
            self._placement_instructions(
                self.placement.prepared(ins.pg_id, ins.attempt, ins.node_id, ok, time.monotonic())
            )

        self.requests.send(
            node.address, P.PrepareBundles(ins.pg_id, ins.attempt, bundles), on_reply
        )

    def _send_to_node(self, node_id: bytes, msg):
        node = self.nodes.get(node_id)
        if node is not None and node.alive:
            self.endpoint.send(node.address, msg)

    def _sync_node_records(self):
        """The head's records show the group resources now, not a heartbeat later."""
        for node_id, capacity in self.placement.nodes.items():
            node = self.nodes.get(node_id)
            if node is not None and node.alive:
                node.resources = R.to_floats(capacity.total)
                node.available = R.to_floats(capacity.available)

    def _answer_pg_waiters(self, pg_id: bytes, created: bool, state: str):
        for identity, seq, _ in self.pg_waiters.pop(pg_id, []):
            self.endpoint.reply(identity, P.PlacementGroupReady(pg_id, created, state), seq)

    def _kill_group_actors(self, pg_id: bytes):
        """As in Ray, removing a group kills the actors placed in it, for good."""
        pg_hex = pg_id.hex()
        for actor in list(self.actors.actors.values()):
            if actor.state != A.DEAD and actor.spec.get("placement_group", "")[:36] == pg_hex:
                self._actor_instructions(
                    self.actors.kill(
                        actor.actor_id, True, "the actor's placement group was removed"
                    )
                )

    def _warn_infeasible_group(self, ins: G.Infeasible):
        message = (
            f"The placement group {ins.pg_id.hex()} cannot be created: no set of nodes "
            f"in the cluster can hold its bundles {list(ins.bundles)} with strategy "
            f"{ins.strategy}. It stays pending until nodes that can join the cluster."
        )
        logger.warning("%s", message)
        lines = P.LogLines("stderr", "(head)", [f"WARNING: {message}"])
        job = self.jobs.get(ins.pg_id[-4:])  # a group's id ends with its job's
        if job is not None and job["alive"]:
            self._send_to(job["driver_id"], lines)
