"""``get_node_ip_address`` and ``list_named_actors``: questions about the cluster and this node."""

from __future__ import annotations

import socket

from zray._private.wire import protocol as P
from zray._private.core import runtime

# Ray asks the kernel which local address routes toward a public resolver. A UDP connect only
# picks the route; no packet leaves the machine.
_PERSPECTIVE = "8.8.8.8:53"


def get_node_ip_address(address=None) -> str:
    """The IP address of this node: the one its node daemon serves on when connected to a
    cluster, else the local address that routes toward ``address`` ("host:port")."""
    core = runtime.core
    if core is not None:
        return core.node_ip
    host, _, port = (address or _PERSPECTIVE).rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, int(port)))
            return probe.getsockname()[0]
    except (OSError, ValueError):
        # No route (an offline machine): the loopback address still names this node.
        return "127.0.0.1"


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors (detached or not) in this job's namespace; with
    ``all_namespaces``, ``{"name": ..., "namespace": ...}`` for every namespace."""
    from zray._config import config

    if runtime.client is not None:
        return runtime.client.api("list_named_actors", all_namespaces)
    core = runtime.require_connected()
    reply, _ = core.requests.call(
        core.head_address,
        P.ListNamedActors(core.current_namespace(), bool(all_namespaces)),
        config.rpc_timeout_s,
    )
    if all_namespaces:
        return [{"name": name, "namespace": namespace} for namespace, name in reply.actors]
    return [name for _, name in reply.actors]
