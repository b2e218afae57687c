"""Ray Client (ray://), zray against Ray 2.60.0 in one run: a head with 2 CPUs started by the
CLI with its client server, and a client process on the same machine connected through it.

* connect: `init("ray://...")` until it returns (a session process starts for the client);
* task round trip: `get(f.remote())` of a no-op task, median of 300 after a warm-up;
* put / get of 100 MiB (a numpy array), median of 5 each: through the one connection.

    bash perf/setup_ray.sh                 # once: Ray 2.60.0 in its own venv
    python perf/bench_client.py            # prints a Markdown table

Ray's head is `ray start --head --block` (stopped by signalling that process, never `ray stop`,
which would stop other users' Ray on this machine too); RAY_AUTH_MODE=disabled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MIB_100 = 100 * 2**20


def measure(framework: str, address: str) -> dict:
    import numpy as np

    if framework == "zray":
        import zray as ray
    else:
        import ray
    start = time.perf_counter()
    ray.init(address, logging_level="ERROR")
    connect_s = time.perf_counter() - start
    try:

        @ray.remote
        def noop():
            return None

        for _ in range(30):
            ray.get(noop.remote())
        trips = []
        for _ in range(300):
            start = time.perf_counter()
            ray.get(noop.remote())
            trips.append((time.perf_counter() - start) * 1000)
        value = np.ones(MIB_100, dtype=np.uint8)
        puts, gets = [], []
        for _ in range(5):
            start = time.perf_counter()
            ref = ray.put(value)
            puts.append(time.perf_counter() - start)
            start = time.perf_counter()
            back = ray.get(ref)
            gets.append(time.perf_counter() - start)
            assert back.nbytes == MIB_100
            del back, ref
        return {
            "connect_s": connect_s,
            "task_round_trip_ms": statistics.median(trips),
            "put_100mib_s": statistics.median(puts),
            "get_100mib_s": statistics.median(gets),
        }
    finally:
        ray.shutdown()


def ray_python() -> str:
    venv = os.environ.get("RAY_VENV") or os.path.join(
        os.path.expanduser("~"), ".zray-perf", "ray-venv"
    )
    return os.path.join(venv, "bin", "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_zray(root: str) -> dict | None:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=REPO, ZRAY_SESSION_DIR_ROOT=root)
    cli = [sys.executable, "-m", "zray.scripts.cli"]
    started = subprocess.run(
        cli
        + ["start", "--head", "--port", "0", "--num-cpus", "2"]
        + ["--ray-client-server-port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if started.returncode != 0:
        print(started.stderr, file=sys.stderr)
        return None
    token = [ln for ln in started.stdout.splitlines() if ln.startswith("Cluster token:")][0]
    try:
        return client(
            "zray",
            sys.executable,
            f"ray://127.0.0.1:{port}",
            root,
            dict(env, ZRAY_TOKEN=token.split()[-1], ZRAY_SESSION_DIR_ROOT=root + "/c"),
        )
    finally:
        subprocess.run(cli + ["stop"], env=env, capture_output=True, timeout=120)


def run_ray(root: str) -> dict | None:
    python = ray_python()
    if not os.path.exists(python):
        print(f"no Ray venv at {python}: run bash perf/setup_ray.sh", file=sys.stderr)
        return None
    port, head_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH="", RAY_TMPDIR=root, RAY_AUTH_MODE="disabled")
    ray_cli = os.path.join(os.path.dirname(python), "ray")
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            f"--port={head_port}",
            "--num-cpus=2",
            f"--ray-client-server-port={port}",
            "--include-dashboard=false",
            f"--temp-dir={root}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # the client server answers once the head is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or head.poll() is not None:
                    return None
                time.sleep(0.5)
        return client("ray", python, f"ray://127.0.0.1:{port}", root, env)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def client(framework: str, python: str, address: str, root: str, env: dict) -> dict | None:
    done = subprocess.run(
        [python, os.path.abspath(__file__), "inner", framework, address],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root,
    )
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if line:
        return json.loads(line[0][7:])
    print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return None


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "inner":
        print("RESULT " + json.dumps(measure(sys.argv[2], sys.argv[3])), flush=True)
        return
    results = {}
    for framework, run in (("zray", run_zray), ("ray", run_ray)):
        root = tempfile.mkdtemp(prefix="zcl", dir="/tmp")
        try:
            results[framework] = run(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    z, r = results.get("zray"), results.get("ray")
    print("| Ray Client (ray://), same machine | zray | Ray 2.60.0 | zray / Ray |")
    print("| --- | ---: | ---: | ---: |")
    for key, label in (
        ("connect_s", 'connect: init("ray://...") (s)'),
        ("task_round_trip_ms", "task round trip, get(f.remote()) (ms, median of 300)"),
        ("put_100mib_s", "put of 100 MiB (s, median of 5)"),
        ("get_100mib_s", "get of 100 MiB (s, median of 5)"),
    ):
        zv = z[key] if z else float("nan")
        rv = r[key] if r else float("nan")
        ratio = rv / zv if z and r else float("nan")
        print(f"| {label} | {zv:,.3f} | {rv:,.3f} | {ratio:.1f}x faster |")


if __name__ == "__main__":
    main()
