"""The node daemon's answers to lease and bundle requests: grant here, queue, or send the
requester to a node with room (spillback); bundles reserved for placement groups.

A mixin of NodeDaemon (daemon.py): it runs on the daemon's one thread, with its state."""

from __future__ import annotations

import logging
import time

from zray._private.common import resources as R
from zray._private.node import head_resume
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)


class LeaseHandlers:
    def on_request_lease(self, identity, msg: P.RequestLease, seq):
        try:
            need = R.to_units(msg.resources)
        except (TypeError, ValueError, OverflowError) as exc:
            self.endpoint.reply(identity, P.Error("ValueError", str(exc)), seq)
            return
        target = self.view.pick(
            need,
            msg.strategy,
            msg.spilled,
            self.scheduler.available,
            self.scheduler.total,
            msg.preferred_node,
        )
        if target is not None and self._spill(identity, msg.request_id, seq, target, need):
            return
        self.lease_seq[(identity, msg.request_id)] = seq
        self.lease_meta[(identity, msg.request_id)] = msg
        self._dispatch(
            self.scheduler.request_lease(
                identity, msg.request_id, need, msg.for_actor, msg.runtime_env
            )
        )

    def _spill(self, identity, request_id: int, seq: int, target: bytes, need: dict) -> bool:
        address = self.view.address_of(target)
        if not address:
            return False
        self.view.reserve(target, need)
        self.endpoint.reply(identity, P.LeaseSpillback(request_id, target, address), seq)
        return True

    def _rebalance(self):
        """Queued requests that cannot run here now move to a node that can (spillback)."""
        for (client, request_id), request in list(self.scheduler.queue.items()):
            msg = self.lease_meta.get((client, request_id))
            if msg is None or msg.spilled or R.fits(request.need, self.scheduler.available):
                continue
            target = self.view.pick(
                request.need,
                msg.strategy,
                False,
                self.scheduler.available,
                self.scheduler.total,
                msg.preferred_node,
            )
            if target is None:
                continue
            seq = self.lease_seq.get((client, request_id), 0)
            if self._spill(client, request_id, seq, target, request.need):
                self.scheduler.cancel_request(client, request_id)
                self.lease_seq.pop((client, request_id), None)
                self.lease_meta.pop((client, request_id), None)

    def on_cluster_load(self, identity, msg: P.ClusterLoad, seq):
        self._last_cluster_load = time.monotonic()
        if identity != self.head_identity:
            if self.head_identity:
                head_resume.head_replaced(self, self.head_identity)
            self.head_identity = identity
        self.view.update(msg.nodes)
        self._rebalance()

    def on_cancel_lease_request(self, identity, msg: P.CancelLeaseRequest, seq):
        key = (identity, msg.request_id)
        request_seq = self.lease_seq.pop(key, None)
        self.lease_meta.pop(key, None)
        queued = key in self.scheduler.queue
        self.scheduler.cancel_request(identity, msg.request_id)
        if queued and request_seq:
            # Answered, so the owner's pending callback for it is released (else one leaks
            # per withdrawn request); a request already granted is answered by its grant.
            self.endpoint.reply(
                identity,
                P.Error("LeaseRequestCancelled", f"lease request {msg.request_id} withdrawn"),
                request_seq,
            )

    def on_return_lease(self, identity, msg: P.ReturnLease, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.return_lease(msg.lease_id, msg.kill_worker))

    def on_resize_lease(self, identity, msg: P.ResizeLease, seq):
        try:
            need = R.to_units(msg.resources)
        except (TypeError, ValueError) as exc:
            logger.warning("bad ResizeLease: %s", exc)
            return
        self.resources_dirty = True
        self._dispatch(self.scheduler.resize_lease(msg.lease_id, need))

    def on_notify_blocked(self, identity, msg: P.NotifyBlocked, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.set_blocked(identity, msg.blocked))

    def on_prepare_bundles(self, identity, msg: P.PrepareBundles, seq):
        try:
            bundles = [(int(index), R.to_units(resources)) for index, resources in msg.bundles]
        except (TypeError, ValueError) as exc:
            logger.warning("bad PrepareBundles: %s", exc)
            bundles = None
        ok = bundles is not None and self.scheduler.prepare_bundles(msg.pg_id, bundles)
        self.resources_dirty = True
        self.endpoint.reply(identity, P.BundlesPrepared(msg.pg_id, msg.attempt, ok), seq)

    def on_commit_bundles(self, identity, msg: P.CommitBundles, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.commit_bundles(msg.pg_id, msg.indices))

    def on_return_bundles(self, identity, msg: P.ReturnBundles, seq):
        self.resources_dirty = True
        self._dispatch(self.scheduler.return_bundles(msg.pg_id, msg.indices))
