"""A node's side of a head restart: noticing that the head is gone, telling the head that comes
back what this node holds, and dropping what the old head had asked of it.

What survives a head's death here: this node, its workers, the actors they host, its objects
and the leases it granted (to owners, and to the head for actors). What the head must learn
again is sent in one `ResumeNode` (zray/_private/wire/head_link.py says when); the restarted
head rebuilds its object directory, its client table and its actors' whereabouts from it. The
placement group bundles it holds go just before (`ResumeBundles`): the head commits or returns
what a crashed predecessor left half done.
"""

from __future__ import annotations

import logging
import socket
import time

from zray._config import config
from zray._private.wire import protocol as P

logger = logging.getLogger(__name__)

HEAD_IDENTITY_PREFIX = b"head-"  # the head's endpoint identity (node/daemon.py)


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
