"""Starting the web dashboard (`zray.dashboard`) beside the head node's daemon.

The daemon binds the dashboard's listening socket itself, so the URL is known (and a busy port
reported) before the node says it is ready, and hands it to the process.

A cluster that `init()` starts inside a program starts the process at the first connection
(socket activation, as systemd and inetd do it; the connection waits in the backlog
meanwhile): starting it with the node cost `init()` and the first task 0.2-0.4 s on two CPUs
(Python and aiohttp importing beside the first workers), and every such cluster 31 MiB (PSS)
that nobody looked at, while its first page now takes 1-3 s longer. `zray start --head`, which
has just printed the URL for a person to open, starts the process at once, as Ray does.

The daemon stops the process when it stops, and arms the socket again if it dies (it starts
again at the next request); a process whose daemon died without a word (SIGKILL) notices
within a second and exits.
"""

from __future__ import annotations

import errno
import logging
import socket
import subprocess

from zray._config import environment_for_children
from zray._private.common.launch import module_command

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8265
# As Ray: the default port may move up when taken (by another cluster of this machine); a
# port the user named may not.
DEFAULT_PORT_RETRIES = 50


class DashboardPortError(OSError):
    """The dashboard's port was taken or could not be bound."""


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on `host`:`port`; `port` None means 8265 or one of the next 50."""
    candidates = (
        [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + DEFAULT_PORT_RETRIES)
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last: OSError | None = None
    for candidate in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            last = exc
            if exc.errno != errno.EADDRINUSE:
                break
            continue
        return sock
    tried = f"port {port}" if port is not None else f"ports {candidates[0]}-{candidates[-1]}"
    raise DashboardPortError(
        f"the dashboard cannot listen on {host} ({tried}): {last}; choose another with "
        f"--dashboard-port (init(dashboard_port=...)) or turn it off with "
        f"--include-dashboard=false"
    )


def url_host(host: str, node_ip: str) -> str:
    """The host a browser should use: the node's address when bound to every interface."""
    if host in ("0.0.0.0", "::", ""):
        host = node_ip
    return f"[{host}]" if ":" in host else host


class DashboardProcess:
    """The dashboard's socket, and its process once a browser or tool first connects."""

    def __init__(self, sock: socket.socket, cmd: list, env: dict, log_path: str, address: str):
        self.sock = sock
        self.cmd = cmd
        self.env = env
        self.log_path = log_path
        self.address = address  # host:port, as Ray's dashboard_url
        self.process: subprocess.Popen | None = None

    @property
    def fd(self) -> int:
        return self.sock.fileno()

    def spawn(self):
        """Starts the process, which accepts the connection that woke us and the rest."""
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(self.fd,),
                env=self.env,
            )
        finally:
            log.close()
        logger.info("dashboard started (pid %d) at http://%s", self.process.pid, self.address)

    def exited(self) -> bool:
        """True once, when a started process has ended (the socket may be armed again)."""
        if self.process is None or self.process.poll() is None:
            return False
        logger.warning(
            "the dashboard (pid %d) exited with code %s; it starts again on the next request "
            "(its log: %s)",
            self.process.pid,
            self.process.returncode,
            self.log_path,
        )
        self.process = None
        return True

    def stop(self, timeout: float = 3.0):
        self.sock.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def prepare(
    sock: socket.socket,
    host: str,
    node_ip: str,
    session_dir: str,
    head_address: str,
    creds,
    log_path: str,
) -> DashboardProcess:
    """The dashboard on `sock` (from bind()); its process starts at the first connection."""
    import os

    cmd = module_command("zray.dashboard") + [
        "--listen-fd",
        str(sock.fileno()),
        "--session-dir",
        session_dir,
        "--head-address",
        head_address,
        "--parent-pid",
        str(os.getpid()),
        "--log-file",
        log_path,
    ]
    # By environment, never argv: every local user can read argv.
    env = environment_for_children(
        {"ZRAY_TOKEN": creds.token, "ZRAY_ENCRYPT": "1" if creds.encrypt else "0"}
    )
    return DashboardProcess(
        sock, cmd, env, log_path, f"{url_host(host, node_ip)}:{sock.getsockname()[1]}"
    )
