"""get_runtime_context() in a ray:// client: the driver it describes is the client's session
on the head (its job, node, worker and namespace), as Ray's client reports its server's."""

from __future__ import annotations

import types


class _Context:
    task_id = None
    name = None
    resources = None


def client_core_view(client):
    """What RuntimeContext reads of a core worker, from what the session told the client."""
    info = client.info
    return types.SimpleNamespace(
        mode="driver",
        node_id=info["node_id"],
        worker_id=info["worker_id"],
        current_job_id=lambda: info["job_id"],
        current_namespace=lambda: info["namespace"],
        head_address=info["head_address"],
        session_dir=info["session_dir"],
        runtime_env=info.get("runtime_env") or {},
        actor_host=None,
        gpu_ids=[],
        context=_Context(),
    )
