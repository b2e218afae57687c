"""Opening a ray:// connection for `init("ray://host:port")`, and what init returns then."""

from __future__ import annotations

import sys

from zray._config import config


def connect_client(address: str, namespace, runtime_env, log_to_driver: bool):
    """A connected ClientWorker: the handshake first (a wrong token fails here, before any
    session starts), then the session's init."""
    import zmq

    from zray._private.wire import security
    from zray.util.client.worker import connect

    host_port = address.split("://", 1)[1].rstrip("/")
    if ":" not in host_port:
        host_port += ":10001"  # Ray's default client server port
    endpoint = f"tcp://{host_port}"
    if not config.token:
        raise ConnectionError(
            f"connecting to {address} needs the cluster token: set ZRAY_TOKEN (printed by "
            "`zray start --head`)"
        )
    ctx = zmq.Context()
    try:
        creds = security.negotiate(
            ctx,
            endpoint,
            security.Credentials(config.token, config.encrypt),
            config.join_timeout_s,
        )
    finally:
        ctx.term()
    return connect(endpoint, namespace, runtime_env, creds, log_to_driver)


class ClientContext(dict):
    """What init("ray://...") returns, as Ray's ClientContext: the versions of both ends; a
    context manager that disconnects on exit."""

    def __init__(self, client, shutdown):
        super().__init__(
            dashboard_url=None,
            python_version="%d.%d.%d" % sys.version_info[:3],
            ray_version="2.60.0",
            ray_commit="",
            protocol_version=None,
            _num_clients=1,
        )
        self.__dict__.update(self)
        self._client = client
        self._shutdown = shutdown

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._shutdown()

    def disconnect(self):
        self._shutdown()
