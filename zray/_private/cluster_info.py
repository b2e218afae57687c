"""Finding a running cluster: `address="auto"`, ZRAY_ADDRESS, its credentials, and one-shot head
queries for the CLI (no core worker needed)."""
from __future__ import annotations

import os

import zmq

from zray._config import config
from zray._fast import random_id
from zray._private import protocol as P
from zray._private import security, session
from zray._private.transport import REPLY, Endpoint, choose_address, ipc_path, serve_context


class ClusterNotFound(ConnectionError):
    pass


def resolve_address(address: str) -> str:
    """'auto' -> the head started on this machine by `zray start --head`; otherwise host:port."""
    if address in ("auto", None, ""):
        address = config.address or _local_head_address()
    return address if "://" in address else "tcp://" + address


def _local_head_address() -> str:
    path = os.path.join(config.session_dir_root, "head_address")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        raise ClusterNotFound(
            "Could not find any running zray instance. Start one with 'zray start --head', or "
            "call zray.init() without an address for a local cluster.") from None


def credentials_for(address: str) -> security.Credentials:
    """The token for the cluster at `address` (ZRAY_TOKEN, else the session of a node of this
    machine), with the encryption the head turns out to use."""
    if config.token:
        creds = security.Credentials(config.token, config.encrypt)
    else:
        live = session.live_sessions()
        if not live:
            raise ClusterNotFound(
                f"no zray node runs on this machine to join the cluster at {address}; start "
                f"one with 'zray start --address=... --token=...'")
        creds = security.local_credentials(address, live)
        if creds is None:
            raise security.AuthenticationError(
                f"no token for the zray cluster at {address}: set ZRAY_TOKEN to the token "
                f"`zray start --head` printed (it is in the head's session directory, file "
                f"'{security.TOKEN_FILE}')")
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
        f"'zray start --address={address.replace('tcp://', '')}'")
