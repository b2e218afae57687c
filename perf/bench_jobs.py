"""Ray Jobs: Ray 2.60's own Jobs client against a zray cluster, and job latency, zray vs Ray.

    python perf/bench_jobs.py check              # Ray's JobSubmissionClient and `ray job` on zray
    python perf/bench_jobs.py latency [--runs 10]

`check` starts `zray start --head`, then runs Ray's JobSubmissionClient (submit with a
working_dir, tail_job_logs, get_job_info/logs, list_jobs, stop_job, delete_job) and Ray's `ray
job submit|status|logs|list` from the ray[default] venv ($HOME/.zray-perf/ray-default-venv)
against its dashboard, the cluster token given as Ray's clients give one (headers=,
RAY_JOB_HEADERS, RAY_AUTH_MODE=token with RAY_AUTH_TOKEN), and prints what each step returned.

`latency` measures, with the same client (Ray's, from that venv) for both clusters, how long a
submitted job takes to be seen RUNNING and SUCCEEDED (status polled every 10 ms): `echo`
(the supervisor and the entrypoint's process only), and a script that joins the cluster and
runs one task (`import zray/ray; init(); get(f.remote())`). zray: `zray start --head`; Ray:
`ray start --head` (RAY_AUTH_MODE=disabled) under a temp dir of its own, its processes stopped
by pid (never `ray stop`, which would stop every Ray cluster of the machine). Both with 2 CPUs,
measured alternately in the same run. Never run by the test suite (it imports Ray's client).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAY_BIN = os.path.expanduser(
    os.environ.get("RAY_DEFAULT_VENV", "~/.zray-perf/ray-default-venv") + "/bin"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ZrayHead:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="zj", dir="/tmp")
        self.env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=self.root)
        self.env.pop("ZRAY_TOKEN", None)
        started = self.cli(
            "start", "--head", "--port", "0", "--num-cpus", "2", "--dashboard-port",
            str(free_port()),
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        url = re.search(r"View the dashboard at (\S+)", started.stdout).group(1)
        self.url, self.token = url.split("/?token=")
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def cli(self, *args):
        return subprocess.run(
            [sys.executable, "-m", "zray.scripts.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )

    def stop(self):
        self.cli("stop")
        shutil.rmtree(self.root, ignore_errors=True)


class RayHead:
    def __init__(self):
        self.temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")
        self.env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
        self.env.pop("RAY_ADDRESS", None)
        port = free_port()
        started = subprocess.run(
            [
                f"{RAY_BIN}/ray", "start", "--head", "--port", "0", "--num-cpus", "2",
                f"--temp-dir={self.temp}", f"--dashboard-port={port}", "--include-dashboard=true",
                "--disable-usage-stats",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env=self.env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr + started.stdout
        self.url = f"http://127.0.0.1:{port}"
        self.headers: dict = {}
        deadline = time.monotonic() + 120
        while True:  # the dashboard's job module answers some seconds after `ray start`
            try:
                urllib.request.urlopen(self.url + "/api/version", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self):
        for process in psutil.process_iter(["cmdline"]):
            if self.temp in " ".join(process.info["cmdline"] or []):
                try:
                    for child in process.children(recursive=True):
                        child.send_signal(signal.SIGKILL)
                    process.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
        shutil.rmtree(self.temp, ignore_errors=True)


def ray_python(code: str, *args: str, env=None, timeout: float = 600) -> str:
    run = subprocess.run(
        [f"{RAY_BIN}/python", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env or os.environ, PYTHONPATH=""),
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    return run.stdout


# ---------------------------------------------------------------------------- check

CHECK = """
import asyncio, json, os, sys, tempfile, time
from ray.job_submission import JobStatus, JobSubmissionClient

url, headers = sys.argv[1], json.loads(sys.argv[2])
client = JobSubmissionClient(url, headers=headers)
work = tempfile.mkdtemp()
with open(os.path.join(work, "main.py"), "w") as f:
    f.write("import os, zray\\nzray.init()\\n"
            "print('hello from', os.path.basename(os.getcwd()), os.environ['GREETING'],"
            " zray.get(zray.remote(lambda: 6 * 7).remote()))\\n")
sid = client.submit_job(entrypoint="python main.py",
                        runtime_env={"working_dir": work, "env_vars": {"GREETING": "hi"}},
                        metadata={"from": "ray's client"})
print("submit_job ->", sid)
async def tail():
    out = []
    async for chunk in client.tail_job_logs(sid):
        out.append(chunk)
    return "".join(out)
print("tail_job_logs ->", repr(asyncio.run(tail())))
info = client.get_job_info(sid)
print("get_job_info ->", info.status, info.job_id, info.metadata, info.driver_exit_code)
print("get_job_logs ->", repr(client.get_job_logs(sid)[-60:]))
print("list_jobs ->", [(j.type.value, j.submission_id, j.status.value) for j in client.list_jobs()])
sleeper = client.submit_job(entrypoint="sleep 300")
while client.get_job_status(sleeper) != JobStatus.RUNNING:
    time.sleep(0.05)
print("stop_job ->", client.stop_job(sleeper))
while not client.get_job_status(sleeper).is_terminal():
    time.sleep(0.05)
print("after stop ->", client.get_job_status(sleeper))
print("delete_job ->", client.delete_job(sleeper))
failing = client.submit_job(entrypoint="python -c 'raise SystemExit(4)'")
while not client.get_job_status(failing).is_terminal():
    time.sleep(0.05)
info = client.get_job_info(failing)
print("failing ->", info.status, info.error_type, info.driver_exit_code)
"""


def cmd_check(args) -> dict:
    head = ZrayHead()
    results = {}
    try:
        out = ray_python(CHECK, head.url, json.dumps(head.headers))
        print(out)
        results["JobSubmissionClient"] = out.strip().splitlines()
        env = dict(os.environ, PYTHONPATH="", RAY_ADDRESS=head.url)
        work = tempfile.mkdtemp()
        with open(os.path.join(work, "job.py"), "w") as f:
            f.write("import zray\nzray.init()\nprint('ray job submit ran on zray')\n")
        for label, extra in (
            ("RAY_JOB_HEADERS", {"RAY_JOB_HEADERS": json.dumps(head.headers)}),
            ("RAY_AUTH_MODE=token", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head.token}),
        ):
            submit = subprocess.run(
                [f"{RAY_BIN}/ray", "job", "submit", "--submission-id", f"cli-{len(results)}",
                 "--working-dir", work, "--", "python", "job.py"],
                capture_output=True, text=True, timeout=120, env=dict(env, **extra),
            )  # fmt: skip
            ok = submit.returncode == 0 and "ray job submit ran on zray" in submit.stdout
            listed = subprocess.run(
                [f"{RAY_BIN}/ray", "job", "list"],
                capture_output=True, text=True, timeout=60, env=dict(env, **extra),
            )  # fmt: skip
            results[f"ray job submit ({label})"] = "ok" if ok else submit.stdout + submit.stderr
            results[f"ray job list ({label})"] = "ok" if listed.returncode == 0 else listed.stderr
            print(label, results[f"ray job submit ({label})"], results[f"ray job list ({label})"])
        shutil.rmtree(work, ignore_errors=True)
    finally:
        head.stop()
    return results


# ---------------------------------------------------------------------------- latency

LATENCY = """
import json, sys, time
from ray.job_submission import JobStatus, JobSubmissionClient

url, headers, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
entrypoints = json.loads(sys.argv[4])
client = JobSubmissionClient(url, headers=headers)
out = {}
for name, entrypoint in entrypoints.items():
    for run in range(runs + 1):  # the first run warms the cluster up, and is not counted
        start = time.perf_counter()
        sid = client.submit_job(entrypoint=entrypoint)
        submitted = time.perf_counter()
        running = None
        while True:
            status = client.get_job_status(sid)
            now = time.perf_counter()
            if status == JobStatus.RUNNING and running is None:
                running = now
            if status.is_terminal():
                break
            time.sleep(0.01)
        assert status == JobStatus.SUCCEEDED, client.get_job_logs(sid)
        if run:
            row = out.setdefault(name, {"submit_call": [], "running": [], "succeeded": []})
            row["submit_call"].append(submitted - start)
            row["running"].append((running or now) - start)
            row["succeeded"].append(now - start)
print(json.dumps(out))
"""


def summary(values: list) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"{statistics.median(values) * 1000:.0f} ms (p90 {p90 * 1000:.0f})"


def cmd_latency(args) -> dict:
    results: dict = {}
    for framework in ("zray", "ray"):
        head = ZrayHead() if framework == "zray" else RayHead()
        module = "zray" if framework == "zray" else "ray"
        python = sys.executable if framework == "zray" else f"{RAY_BIN}/python"
        entrypoints = {
            "echo": "echo hello",
            "init + one task": f"{python} -c 'import {module} as r; r.init(); "
            "print(r.get(r.remote(lambda: 1).remote()))'",
        }
        try:
            out = ray_python(
                LATENCY, head.url, json.dumps(head.headers), str(args.runs), json.dumps(entrypoints)
            )
        finally:
            head.stop()
        for name, row in json.loads(out.strip().splitlines()[-1]).items():
            for what, values in row.items():
                key = f"{name}: submit -> {what}"
                results.setdefault(key, {})[framework] = summary(values)
                print(framework, key, results[key][framework], flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("check", "latency"))
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    result = cmd_check(args) if args.what == "check" else cmd_latency(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
