"""ray.util.connect / disconnect: Ray Client's older entry points, kept in Ray 2.60 beside
`init("ray://...")`, which they call here."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


def connect(
    conn_str: str,
    secure: bool = False,
    metadata: List[Tuple[str, str]] = None,
    connection_retries: int = 3,
    job_config=None,
    namespace: str = None,
    *,
    ignore_version: bool = False,
    _credentials: Optional[Any] = None,
    ray_init_kwargs: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Connects this program to the client server at ``conn_str`` ("host:port") as
    ``init("ray://host:port")`` does; returns the connection's information."""
    from zray import api

    for name, value in (
        ("secure", secure),
        ("metadata", metadata),
        ("job_config", job_config),
        ("_credentials", _credentials),
    ):
        if value:
            raise NotImplementedError(
                f"ray.util.connect({name}=...) is not supported by zray: a ray:// connection "
                "is authenticated by the cluster token (ZRAY_TOKEN) and encrypted with the "
                "cluster's --encrypt setting"
            )
    address = conn_str if "://" in conn_str else "ray://" + conn_str
    return dict(api.init(address, namespace=namespace, **(ray_init_kwargs or {})))


def disconnect():
    """Disconnects from the client server; does nothing when not connected."""
    from zray import api
    from zray._private.core import runtime

    if runtime.client is not None:
        api.shutdown()
