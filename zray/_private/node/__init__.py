"""The node daemon: local scheduler, worker pool, shared-memory object table, spilling."""
