"""zray.util: Ray's utility namespace. ``queue``, ``multiprocessing`` and ``joblib`` are
submodules imported on demand, as in Ray (``from zray.util.queue import Queue``)."""

from zray.util import scheduling_strategies
from zray.util.actor_pool import ActorPool
from zray.util.check_serialize import inspect_serializability
from zray.util.client_connect import connect, disconnect
from zray.util.cluster_queries import get_node_ip_address, list_named_actors
from zray.util.helpers import as_completed, map_unordered
from zray.util.serialization import deregister_serializer, register_serializer
from zray.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool",
    "as_completed",
    "connect",
    "deregister_serializer",
    "disconnect",
    "get_current_placement_group",
    "get_node_ip_address",
    "get_placement_group",
    "inspect_serializability",
    "list_named_actors",
    "map_unordered",
    "placement_group",
    "placement_group_table",
    "register_serializer",
    "remove_placement_group",
    "scheduling_strategies",
]
