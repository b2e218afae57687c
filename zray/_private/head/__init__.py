"""The head service: cluster tables, actor manager, object directory, placement groups."""
