"""A real redis-server for the tests of the Redis head store: on a free port, in a temp dir,
with a password, persisting every write (appendfsync always), stopped by the fixture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

PASSWORD = "store-test-password"


def require_redis():
    """Skips, loudly, where the Redis store cannot be tested; fails instead under CI, whose
    script installs redis-server and the client, so a missing one is a broken setup."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server is not installed (apt-get install -y redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        missing.append("the redis client is not installed (pip install 'zray[redis]')")
    if missing:
        reason = "; ".join(missing) + ": the Redis head store is NOT tested"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="zray-redis-")
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--requirepass",
                PASSWORD,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(10.0)

    def _wait_ready(self, timeout: float):
        import redis

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                client = redis.Redis(port=self.port, password=PASSWORD, socket_timeout=1)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not answer")
                time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server():
    """Module-scoped, so no redis-server outlives its module: other modules' leak checks count
    every child process."""
    require_redis()
    server = RedisServer()
    yield server
    server.stop()
