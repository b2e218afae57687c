"""Ray Client for zray: `zray.init("ray://host:port")` runs this program against a remote
cluster through one connection to the head's client server (`zray start --head
--ray-client-server-port=PORT`). `worker.py` is the client side, `server/` the head's side,
`channel.py` the connection both use; docs/protocol.md ("Ray Client") has the messages."""

from __future__ import annotations


def is_client_address(address) -> bool:
    return isinstance(address, str) and address.startswith(("ray://", "zray://"))
