"""Placement groups with Ray's API: reserve bundles of resources across nodes, then run tasks
and actors in them (`PlacementGroupSchedulingStrategy`).

The head places a group's bundles with a two-phase reservation (zray/_private/head/placement_groups.py,
docs/protocol.md "Placement groups"); once committed, a bundle is a set of named resources on its
node (zray/_private/common/bundles.py), and a task in it asks for those names instead of CPU, GPU, ...
"""

from __future__ import annotations

import os
import warnings

from zray._config import config
from zray._private.common import bundles as B
from zray._private.wire import protocol as P
from zray._private.common import resources as R
from zray._private.core import runtime
from zray._private.common.id_types import PlacementGroupID

VALID_PLACEMENT_GROUP_STRATEGIES = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}


class PlacementGroup:
    """A handle to a placement group."""

    @staticmethod
    def empty() -> "PlacementGroup":
        return PlacementGroup(PlacementGroupID.nil())

    def __init__(self, id: PlacementGroupID, bundle_cache: list | None = None):
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    def ready(self):
        """An ObjectRef that resolves to this group once all its bundles are reserved."""
        if runtime.client is not None:
            return runtime.client.api("placement_group_ready", self)
        core = runtime.require_connected()
        if self.is_empty:
            return core.put(self)
        ref, fulfil = core.promise()

        def on_reply(reply, payload):
            if isinstance(reply, P.PlacementGroupReady) and reply.created:
                fulfil(self)
            else:
                from zray.exceptions import RaySystemError

                fulfil(
                    RaySystemError(
                        f"Placement group {self.id.hex()} was removed before it was created."
                    ),
                    error=True,
                )

        core.requests.send(
            core.head_address, P.WaitPlacementGroup(self.id.binary(), -1.0), on_reply
        )
        return ref

    def wait(self, timeout_seconds: float | int = 30) -> bool:
        """Whether the group was created within `timeout_seconds`."""
        if runtime.client is not None:
            return runtime.client.api("placement_group_wait", self, timeout_seconds)
        core = runtime.require_connected()
        reply, _ = core.requests.call(
            core.head_address,
            P.WaitPlacementGroup(self.id.binary(), float(timeout_seconds)),
            float(timeout_seconds) + config.rpc_timeout_s,
        )
        return isinstance(reply, P.PlacementGroupReady) and reply.created

    @property
    def bundle_specs(self) -> list:
        """The group's bundles: a resource dict each."""
        self._fill_bundle_cache_if_needed()
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        self._fill_bundle_cache_if_needed()
        return len(self.bundle_cache)

    def _fill_bundle_cache_if_needed(self):
        if not self.bundle_cache:
            row = placement_group_table(self)
            self.bundle_cache = list(row["bundles"].values()) if row else []

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and self.id == other.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"PlacementGroup(id={self.id.hex()})"


def placement_group(
    bundles: list,
    strategy: str | None = None,
    name: str = "",
    lifetime: str | None = None,
    _soft_target_node_id: str | None = None,
    bundle_label_selector: list | None = None,
    topology_strategy: dict | None = None,
) -> PlacementGroup:
    """Asynchronously creates a placement group of `bundles` (resource dicts) placed by
    `strategy` (PACK by default, SPREAD, STRICT_PACK or STRICT_SPREAD). `lifetime="detached"`
    makes it outlive the job that made it; otherwise it is removed when that job ends."""
    validate_placement_group(
        bundles, strategy, lifetime, _soft_target_node_id, bundle_label_selector, topology_strategy
    )
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if runtime.client is not None:  # the ray:// session creates it, as its job's
        return runtime.client.api(
            "placement_group", bundles, strategy, name, lifetime, _soft_target_node_id
        )
    core = runtime.require_connected()
    pg_id = os.urandom(PlacementGroupID.SIZE - 4) + core.current_job_id()
    floats = [{k: float(v) for k, v in bundle.items()} for bundle in bundles]
    soft_target = bytes.fromhex(_soft_target_node_id) if _soft_target_node_id else b""
    reply, _ = core.requests.call(
        core.head_address,
        P.CreatePlacementGroup(
            pg_id,
            name,
            core.current_namespace(),
            strategy or "PACK",
            [{k: v for k, v in b.items() if v} for b in floats],
            lifetime == "detached",
            core.current_job_id(),
            soft_target,
            core.actor_host.actor_id if core.actor_host is not None else b"",
        ),
        config.rpc_timeout_s,
    )
    if isinstance(reply, P.Error):
        raise ValueError(reply.message)
    return PlacementGroup(PlacementGroupID(pg_id), bundle_cache=floats)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Removes the group: its actors are killed, its tasks' workers stopped, its resources
    returned to their nodes."""
    assert placement_group is not None
    if runtime.client is not None:
        return runtime.client.api("remove_placement_group", placement_group)
    core = runtime.require_connected()
    # Asynchronous, as in Ray; whatever this process asks the head next is answered after it
    # (one ordered connection), so a placement_group_table() that follows sees it REMOVED.
    core.endpoint.send(core.head_address, P.RemovePlacementGroup(placement_group.id.binary()))


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named so in the caller's namespace."""
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    if runtime.client is not None:
        return runtime.client.api("get_placement_group", placement_group_name)
    core = runtime.require_connected()
    rows = _table_rows(b"", placement_group_name, core.current_namespace())
    if not rows:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    return PlacementGroup(PlacementGroupID.from_hex(rows[0]["placement_group_id"]))


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """The state of one group, or of every group keyed by hex id (removed ones included)."""
    if runtime.client is not None:
        return runtime.client.api("placement_group_table", placement_group)
    runtime.require_connected()
    if placement_group is not None:
        rows = _table_rows(placement_group.id.binary(), "", "")
        return rows[0] if rows else {}
    return {row["placement_group_id"]: row for row in _table_rows(b"", "", "")}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the running task or actor was placed in; None in a driver or outside any."""
    if runtime.client is not None:
        return None  # a ray:// program is a driver
    core = runtime.require_connected()
    current = _current(core)
    if not current:
        return None
    return PlacementGroup(PlacementGroupID.from_hex(current.split(":")[0]))


def check_placement_group_index(placement_group: PlacementGroup, bundle_index: int) -> None:
    assert placement_group is not None
    if placement_group.id.is_nil():
        if bundle_index != -1:
            raise ValueError("If placement group is not set, the value of bundle index must be -1.")
    elif bundle_index >= placement_group.bundle_count or bundle_index < -1:
        raise ValueError(
            f"placement group bundle index {bundle_index} is invalid. Valid "
            f"placement group indexes: 0-{placement_group.bundle_count}"
        )


def validate_placement_group(
    bundles,
    strategy=None,
    lifetime=None,
    _soft_target_node_id=None,
    bundle_label_selector=None,
    topology_strategy=None,
) -> bool:
    """Raises ValueError for arguments Ray refuses, NotImplementedError for ones zray cannot
    honour yet."""
    if topology_strategy is not None and strategy is not None:
        raise ValueError(
            "`strategy` and `topology_strategy` cannot both be specified. Pass "
            "node-level packing via `topology_strategy['ray.io/node-id']`."
        )
    if strategy is not None and strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError(
            f"Invalid placement group strategy {strategy}. "
            f"Supported strategies are: {VALID_PLACEMENT_GROUP_STRATEGIES}."
        )
    if topology_strategy or bundle_label_selector:
        name = "topology_strategy" if topology_strategy else "bundle_label_selector"
        raise NotImplementedError(
            f"zray does not support the placement group argument {name!r} yet (node labels "
            "do not exist in zray); see 'Differences from Ray' in zray's README."
        )
    if _soft_target_node_id and (strategy or "PACK") != "STRICT_PACK":
        raise ValueError(
            "_soft_target_node_id currently only works "
            f"with STRICT_PACK but got {strategy or 'PACK'}"
        )
    if _soft_target_node_id:
        try:
            valid = len(bytes.fromhex(_soft_target_node_id)) == 28
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"Invalid hex ID of _soft_target_node_id, got {_soft_target_node_id}")
    _validate_bundles(bundles)
    if lifetime not in (None, "detached"):
        raise ValueError(
            "Placement group `lifetime` argument must be either `None` or "
            f"'detached'. Got {lifetime}."
        )
    return True


def _validate_bundles(bundles):
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if len(bundles) == 0:
        raise ValueError(
            "Bundles must be a non-empty list of resource dictionaries. For "
            'example: `[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list instead.'
        )
    for bundle in bundles:
        if (
            not isinstance(bundle, dict)
            or not all(isinstance(k, str) for k in bundle)
            or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in bundle.values()
            )
        ):
            raise ValueError(
                "Bundles must be a non-empty list of resource dictionaries. "
                'For example: `[{"CPU": 1.0}, {"GPU": 1.0}]`.'
            )
        if len(bundle) == 0 or all(value == 0 for value in bundle.values()):
            raise ValueError(
                "Bundles cannot be an empty dictionary or resources with only 0 "
                f"values. Bundles: {bundles}"
            )
        R.to_units(bundle)  # negative, infinite or 1.5-of-a-kind amounts: zray's ValueError
        if "object_store_memory" in bundle:
            warnings.warn(
                "Setting 'object_store_memory' for bundles is deprecated since it "
                "doesn't actually reserve the required object store memory.",
                DeprecationWarning,
                stacklevel=3,
            )


def _table_rows(pg_id: bytes, name: str, namespace: str) -> list:
    core = runtime.require_connected()
    reply, _ = core.requests.call(
        core.head_address, P.GetPlacementGroups(pg_id, name, namespace), config.rpc_timeout_s
    )
    return list(reply.groups) if isinstance(reply, P.PlacementGroupTable) else []


def _current(core) -> str:
    """ "<hex>:<capture>" of the group the running code is placed in, or ""."""
    current = core.context.placement_group if core.mode == "worker" else ""
    if not current and core.actor_host is not None:
        current = core.actor_host.placement_group
    return current or ""


# ------------------------------------------------------------------ placing tasks and actors


def placement_of(core, options: dict, resources: dict, placement_resources: dict, what: str):
    """The (group, bundle index, capture) a task or actor with `options` runs in, or None.
    Ray's rules: a PlacementGroupSchedulingStrategy, else the older `placement_group=` options,
    else (when the running code's group captures its children) the running code's group."""
    strategy = options.get("scheduling_strategy")
    group = options.get("placement_group", "default")
    index = options.get("placement_group_bundle_index", -1)
    capture = options.get("placement_group_capture_child_tasks")
    current = _current(core)
    if strategy is None and group in ("default", None) and index == -1 and not current:
        return None  # the common case, on every submission: nothing to do with groups
    # Imported past the common case: a function-level import costs every submission ~1 us.
    from zray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if group not in ("default", None) and strategy is not None:
        raise ValueError(
            "Placement groups should be specified via the scheduling_strategy "
            "option. The placement_group option is deprecated."
        )
    if not isinstance(strategy, PlacementGroupSchedulingStrategy):
        _warn_deprecated(group, index, capture)
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        group = strategy.placement_group
        index = strategy.placement_group_bundle_index
        capture = strategy.placement_group_capture_child_tasks
    elif strategy is not None:
        return None
    if capture is None:
        capture = current.endswith(":1")
    if group == "default":
        group = (
            PlacementGroup(PlacementGroupID.from_hex(current.split(":")[0]))
            if capture and current
            else None
        )
    if not group:
        group = PlacementGroup.empty()
    if not isinstance(group, PlacementGroup):
        raise TypeError(f"placement_group must be a PlacementGroup, got {type(group).__name__}")
    check_placement_group_index(group, index)
    if group.is_empty:
        return None
    _validate_resource_shape(group, resources, placement_resources, what)
    return group, index, bool(capture)


def _warn_deprecated(group, index: int, capture):
    """Ray's DeprecationWarnings for the older `placement_group*` options."""
    for name, given in (
        ("placement_group", group != "default"),
        ("placement_group_bundle_index", index != -1),
        ("placement_group_capture_child_tasks", bool(capture)),
    ):
        if given:
            warnings.warn(
                f"{name} parameter is deprecated. Use scheduling_strategy="
                "PlacementGroupSchedulingStrategy(...) instead, see the usage at "
                "https://docs.ray.io/en/releases-2.60.0/ray-core/package-ref.html"
                "#ray-remote.",
                DeprecationWarning,
                stacklevel=5,
            )


def _validate_resource_shape(
    group: PlacementGroup, resources: dict, placement_resources: dict, what: str
):
    bundles = group.bundle_specs

    def fits_a_bundle(request):
        return any(
            all(
                bundle.get(name, 0) >= amount
                for name, amount in request.items()
                if name != B.BUNDLE
            )
            for bundle in bundles
        )

    if not fits_a_bundle(resources):
        raise ValueError(
            f"Cannot schedule {what} with the placement group because the "
            f"resource request {resources} cannot fit into any bundles for the "
            f"placement group, {bundles}."
        )
    if not fits_a_bundle(placement_resources):
        raise ValueError(
            f"Cannot schedule {what} with the placement group because the actor "
            f"requires {placement_resources.get('CPU', 0)} CPU for creation, but "
            f"it cannot fit into any bundles for the placement group, {bundles}. "
            "Consider creating a placement group with CPU resources."
        )


def in_group(resources: dict, placement) -> tuple:
    """(resource request, wire strategy, PushTask.placement_group) for a task or actor placed
    by `placement_of`'s answer."""
    group, index, capture = placement
    pg_hex = group.id.hex()
    return (
        B.request_in_bundle(resources, pg_hex, index),
        f"PLACEMENT_GROUP:{pg_hex}:{index}",
        f"{pg_hex}:{int(capture)}",
    )
