"""A node's side of a head restart: noticing that the head is gone, telling the head that comes
back what this node holds, and dropping what the old head had asked of it.

What survives a head's death here: this node, its workers, the actors they host, its objects
and the leases it granted (to owners, and to the head for actors). What the head must learn
again is sent in one `ResumeNode` (zray/_private/wire/head_link.py says when); the restarted
head rebuilds its object directory, its client table and its actors' whereabouts from it. The
placement group bundles it holds go just before (`ResumeBundles`): the head commits or returns
what a crashed predecessor left half done. Owners' frees sent lately go again just after: one
sent to a head that was already gone was lost, and copies of those objects elsewhere would
stay for good; not those of objects their owner has made again since (`ObjectsRevived`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque

from zray._config import config
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)

HEAD_IDENTITY_PREFIX = b"head-"  # the head's endpoint identity (node/daemon.py)
RECENT_FREES_KEPT = 100_000  # ids of owners' frees sent again to a head that came back


def check(node, now: float) -> bool:
    """From the node's timers. True: the head stayed away past the window; the node stops."""
    link = node.head_link
    if link.check(now):
        return False
    if link.down_since:
        if link.expired(now):
            logger.error(
                "the head at %s did not come back within head_reconnect_timeout_s=%gs; "
                "this node stops",
                link.address,
                link.window_s,
            )
            return True
        return False
    silent = now - node._last_cluster_load
    if silent > config.node_death_timeout_s:
        # Its connection looks open, but a head that broadcasts every 0.5 s said nothing: its
        # machine may be gone (no disconnection is ever seen then).
        link.lost(now, f"no ClusterLoad from it for {silent:.0f}s")
    return False


def note_freed(node, object_ids) -> None:
    """An owner freed these (the head frees every other copy): remembered for a while, since
    the head may be gone without our knowing yet, and what we send it then is lost."""
    recent = getattr(node, "_recent_frees", None)
    if recent is None:
        recent = node._recent_frees = deque()
    now = time.monotonic()
    recent.append((now, list(object_ids)))
    # Until a break is noticed: a disconnection at once, a silent head after the timeout.
    horizon = now - config.node_death_timeout_s - 1.0
    while recent and (recent[0][0] < horizon or len(recent) > RECENT_FREES_KEPT):
        recent.popleft()


def forget_freed(node, object_ids) -> None:
    """Their owner makes these again (lineage reconstruction): their frees must not be sent
    again to a restarted head, which would free the new copies."""
    recent = getattr(node, "_recent_frees", None)
    if not recent:
        return
    revived = set(object_ids)
    for index, (when, batch) in enumerate(recent):
        if not revived.isdisjoint(batch):
            recent[index] = (when, [oid for oid in batch if oid not in revived])


def _resend_frees(node) -> None:
    """After our ResumeNode: the frees sent since the head may have gone. The head frees the
    copies it knows, and those of nodes that come back after (recovery.py)."""
    recent = getattr(node, "_recent_frees", None)
    ids = [oid for _, batch in recent or () for oid in batch]
    if ids:
        node.endpoint.send(node.head_address, P.RemoveObjectLocations(node.node_id, ids, True))


def resume(node, link) -> None:
    """Sends ResumeNode (queued on the link's fresh connection until the head listens)."""
    previous = getattr(node, "_resume_seq", 0)
    if previous:
        node.requests.forget(previous)  # a second break: only the newest one counts
    clients = [
        [client_id, node.endpoint.peers.get(client_id, ""), client.kind]
        for client_id, client in node.clients.items()
    ]
    actor_leases = [
        [lease.lease_id, lease.worker_id]
        for lease in node.scheduler.leases.values()
        if lease.client.startswith(HEAD_IDENTITY_PREFIX)
    ]
    objects = [[oid, obj.size] for oid, obj in node.store.objects.items() if obj.sealed]
    bundles = [
        [pg_id, index, bundle.committed]
        for (pg_id, index), bundle in node.scheduler.bundles.items()
    ]
    if bundles:  # first: the head settles them before it places anything here
        node.endpoint.send(node.head_address, P.ResumeBundles(node.node_id, bundles))
    node._resume_seq = node.requests.send(
        node.head_address,
        P.ResumeNode(
            node.node_id,
            node.endpoint.address,
            node.opts.node_ip,
            socket.gethostname(),
            node.resources,
            node.store_capacity,
            False,
            clients,
            actor_leases,
            objects,
        ),
        lambda reply, payload: _resumed(node, link, reply),
    )
    _resend_frees(node)


def _resumed(node, link, reply) -> None:
    node._resume_seq = 0
    if not isinstance(reply, P.Ok):
        logger.error("the head refused this node's return: %s", reply)
        if isinstance(reply, P.Error) and reply.kind == "NodeDiedError":
            # Declared dead while away: its actors run elsewhere now. As Ray's raylet does
            # when the GCS says so, it stops rather than serve beside them.
            node.running = False
        return
    node._last_cluster_load = time.monotonic()
    node.resources_dirty = True  # a heartbeat at once: the head's view of us is empty
    replayed = link.restored()
    logger.info("rejoined the head; %d request(s) sent again", replayed)


def head_replaced(node, old_identity: bytes) -> None:
    """A new head speaks (its ClusterLoad): the old one's queued lease requests would hold
    workers for callbacks that died with it. Leases it was granted are the new head's to keep
    or return (it learnt them from ResumeNode)."""
    stale = [key for key in node.scheduler.queue if key[0] == old_identity]
    for key in stale:
        node.scheduler.cancel_request(*key)
        node.lease_seq.pop(key, None)
        node.lease_meta.pop(key, None)
    if stale:
        logger.info("dropped %d lease request(s) of the previous head", len(stale))
