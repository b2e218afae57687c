"""A driver SIGKILLed mid-job takes its job with it, as in Ray: its non-detached actors end, its
leased workers stop, and every object it owned leaves the store within seconds."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import connect_remote_driver, stopped_on_failure, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT


def node_stats(core):
    from zray._private.wire import protocol as P

    reply, _ = core.requests.call(core.node_address, P.GetNodeStats(0), 10)
    return reply.stats


def test_a_killed_driver_leaves_nothing_behind():
    import zray
    from zray._private.core import runtime

    root = tempfile.mkdtemp(prefix="zt", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    before = (zray_segments(), zray_sessions())
    with stopped_on_failure(env):
        head = zray_cli("start", "--head", "--port", "0", "--num-cpus", "2", env=env)
        assert head.returncode == 0, head.stderr
        address = re.search(r"Head address: (\S+)", head.stdout).group(1)
        token = token_of(head.stdout)
    try:
        connect_remote_driver(zray, address, token, 1)
        core = runtime.core
        idle = node_stats(core)
        script = textwrap.dedent(f"""
            import sys, time
            import numpy as np
            import zray
            from tests.integration.test_cli import connect_remote_driver
            connect_remote_driver(zray, {address!r}, {token!r}, 1)

            @zray.remote
            class Holder:
                def __init__(self):
                    self.data = np.ones(2**20)
                def ping(self):
                    return 1

            @zray.remote
            def make():
                return np.ones(2**21)

            actors = [Holder.remote() for _ in range(2)]
            zray.get([a.ping.remote() for a in actors])
            kept = [zray.put(np.full(2**21, i)) for i in range(3)] + [make.remote()]
            zray.wait(kept, num_returns=len(kept))
            print("ready", flush=True)
            time.sleep(600)
        """)
        driver = subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert driver.stdout.readline().strip() == "ready", driver.stderr.read()
            busy = node_stats(core)
            assert busy["store"]["used"] >= 4 * 2**24 > idle["store"]["used"]
            pool = 2  # the node keeps num_cpus idle workers
            assert busy["workers"] > pool  # the actors' processes
            driver.send_signal(signal.SIGKILL)
            driver.wait(10)
            killed = time.monotonic()
            deadline = killed + 15
            while time.monotonic() < deadline:
                now = node_stats(core)
                if now["store"]["used"] == idle["store"]["used"] and now["workers"] <= pool:
                    break
                time.sleep(0.2)
            assert now["store"]["used"] == idle["store"]["used"], now["store"]
            assert now["workers"] <= pool, now["workers"]
            print(f"driver's job gone {time.monotonic() - killed:.1f} s after SIGKILL")
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait(10)
    finally:
        zray.shutdown()
        zray_cli("stop", env=env)
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)
