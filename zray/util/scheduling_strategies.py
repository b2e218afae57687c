"""Scheduling strategies with Ray's names: pass one as `scheduling_strategy=`."""

from __future__ import annotations


class NodeAffinitySchedulingStrategy:
    """Run on the node with id `node_id` (hex). With `soft=True`, run elsewhere if that node
    is dead or cannot fit the task; otherwise the task waits for that node."""

    def __init__(
        self,
        node_id: str,
        soft: bool,
        _spill_on_unavailable: bool = False,
        _fail_on_unavailable: bool = False,
    ):
        if not isinstance(node_id, str):
            raise TypeError(f"node_id must be a hex string, got {type(node_id).__name__}")
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id}, soft={self.soft})"


class PlacementGroupSchedulingStrategy:
    """Run in bundle `placement_group_bundle_index` of `placement_group` (-1: any of its
    bundles); with `placement_group_capture_child_tasks`, the tasks and actors this one
    creates run in the group too unless they say otherwise."""

    def __init__(
        self,
        placement_group,
        placement_group_bundle_index: int = -1,
        placement_group_capture_child_tasks=None,
    ):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


def encode(strategy) -> str:
    """The wire form of a scheduling strategy option."""
    if strategy is None or strategy == "DEFAULT":
        return "DEFAULT"
    if strategy == "SPREAD":
        return "SPREAD"
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return f"NODE_AFFINITY:{strategy.node_id}:{int(bool(strategy.soft))}"
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        # Where it may run is in its resource names (zray/_private/common/bundles.py); the wire
        # strategy only keeps tasks of different groups from sharing leases.
        return (
            f"PLACEMENT_GROUP:{strategy.placement_group.id.hex()}:"
            f"{strategy.placement_group_bundle_index}"
        )
    raise ValueError(f"Invalid scheduling_strategy {strategy!r}")
