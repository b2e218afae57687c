"""zray.util: Ray's utility namespace (scheduling strategies and placement groups for now)."""
from zray.util import scheduling_strategies
from zray.util.placement_group import (get_current_placement_group, get_placement_group,
                                       placement_group, placement_group_table,
                                       remove_placement_group)

__all__ = ["get_current_placement_group", "get_placement_group", "placement_group",
           "placement_group_table", "remove_placement_group", "scheduling_strategies"]
