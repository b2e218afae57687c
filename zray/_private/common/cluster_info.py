"""Finding a running cluster: `address="auto"`, ZRAY_ADDRESS/RAY_ADDRESS, the cluster `zray start`
recorded, its credentials, and one-shot head queries for the CLI (no core worker needed)."""

from __future__ import annotations

import os

import zmq

from zray._config import config
from zray._fast import random_id
from zray._private.wire import protocol as P
from zray._private.common import cluster_record
from zray._private.wire import security
from zray._private.wire.transport import REPLY, Endpoint, choose_address, ipc_path, serve_context


class ClusterNotFound(ConnectionError):
    pass


NOT_FOUND = (
    "Could not find any running zray instance. Please specify the one to connect to by "
    "setting `--address` flag or `RAY_ADDRESS` environment variable."
)


def bootstrap_address(address: str | None) -> tuple[str | None, bool]:
    """Which cluster `address` names, in Ray's order: an explicit address; for None or 'auto',
    ZRAY_ADDRESS/RAY_ADDRESS, then the cluster `zray start` last started or joined here; None
    (start a new local cluster) when nothing is found and no address was asked for. Also says
    whether a new local cluster is the fallback should the recorded cluster's head not answer
    (no address was asked for, and the record named this one)."""
    if address not in (None, "auto"):
        return address, False
    if config.address:
        address = config.address
        if address != "auto":
            return address, False
    record = cluster_record.read()
    if record is not None:
        return record.address, address is None
    if address is None:
        return None, False
    raise ClusterNotFound(NOT_FOUND)


def resolve_address(address: str | None) -> str:
    """'auto' or None -> the cluster this machine knows of (see bootstrap_address), as a
    tcp:// address; otherwise host:port, likewise. A dashboard's http(s):// URL (what Ray's
    Jobs users put in RAY_ADDRESS, and Ray's state API accepts) names its cluster's head."""
    address = bootstrap_address(address or "auto")[0]
    if address.startswith(("http://", "https://")):
        return head_behind_dashboard(address)
    return address if "://" in address else "tcp://" + address


def head_behind_dashboard(url: str, timeout: float = 10.0) -> str:
    """The head address of the cluster whose dashboard serves `url`, asked of the dashboard
    with the cluster's token: ZRAY_TOKEN, RAY_AUTH_TOKEN, else each token a node of this
    machine holds (the dashboard answers 401 to the others)."""
    import json
    import urllib.error
    import urllib.request

    tokens = [config.token]  # ZRAY_TOKEN, else RAY_AUTH_TOKEN
    for session_dir in cluster_record.local_sessions():
        try:
            tokens.append(security.read_token(session_dir))
        except OSError:
            continue
    tried = 0
    for token in dict.fromkeys(t for t in tokens if t):
        tried += 1
        request = urllib.request.Request(
            url.rstrip("/") + "/api/cluster", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                head = json.loads(response.read())["data"]["result"]["head_address"]
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                continue
            raise ClusterNotFound(f"the dashboard at {url} answered {exc.code}: {exc.reason}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ClusterNotFound(f"no zray dashboard answered at {url}: {exc}") from None
        return head if "://" in head else "tcp://" + head
    raise security.AuthenticationError(
        f"the dashboard at {url} refused {'every token this machine holds' if tried else 'to answer without a token'}: "
        f"set ZRAY_TOKEN to the token `zray start --head` printed"
    )


def credentials_for(address: str) -> security.Credentials:
    """The token for the cluster at `address` (ZRAY_TOKEN, else the session of a node of this
    machine), with the encryption the head turns out to use."""
    if config.token:
        creds = security.Credentials(config.token, config.encrypt)
    else:
        live = cluster_record.local_sessions()
        if not live:
            raise ClusterNotFound(
                f"no zray node runs on this machine to join the cluster at {address}; start "
                f"one with 'zray start --address=... --token=...'"
            )
        creds = security.local_credentials(address, live)
        if creds is None:
            raise security.AuthenticationError(
                f"no token for the zray cluster at {address}: set ZRAY_TOKEN to the token "
                f"`zray start --head` printed (it is in the head's session directory, file "
                f"'{security.TOKEN_FILE}')"
            )
        if config.encrypt:
            creds = security.Credentials(creds.token, True)
    ctx = zmq.Context()
    try:
        return security.negotiate(ctx, choose_address(address), creds, config.join_timeout_s)
    finally:
        ctx.term()


def request(address: str, msg, creds: security.Credentials, timeout: float = 5.0):
    """Sends one request and waits for its answer, from a throwaway endpoint."""
    ctx = zmq.Context()
    serve_context(ctx, creds)
    endpoint = Endpoint(b"cli-" + random_id(8), ["tcp://127.0.0.1:*"], ctx, creds)
    try:
        endpoint.send(address, msg, seq=1)
        poller = zmq.Poller()
        poller.register(endpoint.inbox, zmq.POLLIN)
        remaining_ms = int(timeout * 1000)
        while remaining_ms > 0:
            if not poller.poll(min(remaining_ms, 100)):
                remaining_ms -= 100
                continue
            received = endpoint.receive()
            if received and received[3] & REPLY and received[2] == 1:
                return received[1]
        raise ClusterNotFound(f"no zray head answered at {address} within {timeout}s")
    finally:
        endpoint.close()
        ctx.term()


def fetch_nodes(address: str, creds: security.Credentials) -> list:
    return request(address, P.GetNodes(True), creds).nodes


def local_node_of(address: str, creds: security.Credentials) -> dict:
    """The live node of this machine in the cluster at `address` (its ipc socket is here)."""
    # The head node first: on a machine that runs several nodes (tests), drivers join the head's.
    for node in sorted(fetch_nodes(address, creds), key=lambda n: not n["is_head"]):
        path = ipc_path(node["address"])
        if node["alive"] and path and os.path.exists(path):
            return node
    raise ClusterNotFound(
        f"the cluster at {address} has no node on this machine; start one with "
        f"'zray start --address={address.replace('tcp://', '')}'"
    )


def attach(address: str) -> tuple[dict, str, security.Credentials]:
    """What a driver of this machine needs to join the cluster at `address`: the live node of
    this machine it connects to, that node's session directory, and the credentials."""
    address = address if "://" in address else "tcp://" + address
    creds = credentials_for(address)
    node = local_node_of(address, creds)
    session_dir = os.path.dirname(os.path.dirname(ipc_path(node["address"])))
    return node, session_dir, creds
