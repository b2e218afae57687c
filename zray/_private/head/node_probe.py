"""A restarted head's probes of the nodes it awaits (issue 17).

The nodes its predecessor listed as alive come back with `ResumeNode` within a heartbeat or two
of the head listening again. One that was killed meanwhile never will, and nothing else tells
the new head so: no connection of it ever broke. Rather than leave such a node listed alive
(its tasks unretried, its objects unreconstructed) until head_reconnect_timeout_s ends, the head
opens a TCP connection to each awaited node's inbox every PROBE_INTERVAL_S, without blocking its
loop (a non-blocking connect, looked at on each tick):
- refused: nothing listens there any more, the node's process is gone: dead at once;
- accepted: its kernel still answers for it, it is alive (perhaps busy, or stopped): keep
  waiting for its ResumeNode (a node alive but away still has the window, as before);
- no answer for `unreachable_s` (node_death_timeout_s, as missed heartbeats): its machine is
  gone or cut off: dead.
Ray's restarted GCS likewise health-checks the nodes it read back from its tables rather than
waiting for each to re-register.
"""

from __future__ import annotations

import errno
import select
import socket
from dataclasses import dataclass

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0  # one connect attempt; a loopback or LAN answer takes microseconds
GONE = (errno.ECONNREFUSED, errno.ENOENT)  # ENOENT: a Unix socket whose file went


@dataclass
class _Probe:
    sock: socket.socket | None = None
    started: float = 0.0
    next_at: float = 0.0
    silent_since: float = 0.0  # first probe of the current run of unanswered ones (0: none)


def probe_target(address: str):
    """(family, sockaddr) to connect to for an advertised inbox address: its tcp endpoint (an
    ipc path can outlive the process that bound it, and is only reachable on its machine), or
    its ipc path when it has no tcp one. None: nothing probeable."""
    parts = address.split("|")
    for part in parts:
        if part.startswith("tcp://"):
            host, _, port = part[len("tcp://") :].rpartition(":")
            if host and port.isdigit():
                return socket.AF_INET6 if ":" in host else socket.AF_INET, (
                    host.strip("[]"),
                    int(port),
                )
    for part in parts:
        if part.startswith("ipc://"):
            return socket.AF_UNIX, part[len("ipc://") :]
    return None


class NodeProbes:
    def __init__(self, unreachable_s: float):
        self.unreachable_s = unreachable_s
        self._probes: dict[bytes, _Probe] = {}
        self.sent = 0

    def tick(self, now: float, awaited: dict[bytes, str]) -> list[tuple[bytes, str]]:
        """`awaited`: node id -> address of the nodes not back yet. Returns (node id, reason)
        for each found dead."""
        for node_id in [n for n in self._probes if n not in awaited]:
            self._close(self._probes.pop(node_id))
        dead: list[tuple[bytes, str]] = []
        in_flight = {}
        for node_id, address in awaited.items():
            probe = self._probes.setdefault(node_id, _Probe())
            if probe.sock is None and now >= probe.next_at:
                verdict = self._start(probe, address, now)
                if verdict:
                    dead.append((node_id, verdict))
                    continue
            if probe.sock is not None:
                in_flight[probe.sock.fileno()] = (node_id, probe)
        if in_flight:
            _, writable, _ = select.select([], list(in_flight), [], 0)
            for fd in writable:
                node_id, probe = in_flight.pop(fd)
                verdict = self._answered(probe, now)
                if verdict:
                    dead.append((node_id, verdict))
            for node_id, probe in in_flight.values():
                if now - probe.started >= PROBE_TIMEOUT_S:
                    self._close(probe)
                    verdict = self._unanswered(probe, now)
                    if verdict:
                        dead.append((node_id, verdict))
        for node_id, _ in dead:
            self._close(self._probes.pop(node_id))
        return dead

    def close(self) -> None:
        for probe in self._probes.values():
            self._close(probe)
        self._probes.clear()

    def _start(self, probe: _Probe, address: str, now: float) -> str:
        target = probe_target(address)
        if target is None:
            return ""
        family, sockaddr = target
        probe.next_at = now + PROBE_INTERVAL_S
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.sent += 1
        code = sock.connect_ex(sockaddr)
        if code in (errno.EINPROGRESS, errno.EAGAIN):
            probe.sock, probe.started = sock, now
            return ""
        sock.close()
        return self._verdict(probe, code, now)

    def _answered(self, probe: _Probe, now: float) -> str:
        code = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if probe.sock else 0
        self._close(probe)
        return self._verdict(probe, code, now)

    def _verdict(self, probe: _Probe, code: int, now: float) -> str:
        if code == 0:
            probe.silent_since = 0.0
            return ""
        if code in GONE:
            return "it did not come back after the head restarted, and its port refuses connections"
        return self._unanswered(probe, now)

    def _unanswered(self, probe: _Probe, now: float) -> str:
        if not probe.silent_since:
            probe.silent_since = now
        if now - probe.silent_since >= self.unreachable_s:
            return (
                f"it did not come back after the head restarted, and has not answered for "
                f"{now - probe.silent_since:.1f}s"
            )
        return ""

    @staticmethod
    def _close(probe: _Probe) -> None:
        if probe.sock is not None:
            probe.sock.close()
            probe.sock = None
