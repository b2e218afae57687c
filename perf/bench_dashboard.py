"""The dashboard's cost: idle memory of a head-node cluster with it on and off (zray and Ray
2.60), and how long its main pages take to show in headless Chromium, on an idle cluster and
with many actors and objects.

    python perf/bench_dashboard.py memory        # `zray start --head`: off / on / on and used; Ray
    python perf/bench_dashboard.py startup       # init() + a first task, dashboard on and off
    python perf/bench_dashboard.py pages [--actors 50 --objects 2000]
    python perf/bench_dashboard.py tasks [--tasks 10000]   # the tasks page, 10,000 finished tasks

Memory is the summed PSS (shared pages split between their sharers) of every process of the
cluster after it has been idle for --settle seconds. Ray is `ray start --head` from the perf
venv ($HOME/.zray-perf/ray-venv, perf/setup_ray.sh), under a temp dir of its own; its processes
are found by that temp dir and stopped by pid (never `ray stop`, which would stop every Ray
cluster of the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ray[default]: the dashboard needs its extra dependencies, which the shared perf venv lacks.
RAY_VENV = os.path.expanduser(
    os.environ.get("RAY_DEFAULT_VENV", "~/.zray-perf/ray-default-venv") + "/bin"
)
CHROMIUM = shutil.which("chromium")


def pss(processes) -> tuple[int, int]:
    total = count = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total, count


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tree(pid: int) -> list:
    root = psutil.Process(pid)
    return [root] + root.children(recursive=True)


def zray_cli(root: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    return subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def zray_memory(dashboard: str, settle: float) -> dict:
    root = tempfile.mkdtemp(prefix="zb", dir="/tmp")
    flags = ["--include-dashboard", "false"] if dashboard == "off" else []
    started = zray_cli(root, "start", "--head", "--port", "0", "--num-cpus", "2", *flags)
    try:
        assert started.returncode == 0, started.stderr
        pid = int(re.search(r"\(pid (\d+)\)", started.stdout).group(1))
        if dashboard == "visited":
            url = re.search(r"View the dashboard at (\S+)", started.stdout).group(1)
            base, token = url.split("/?token=")
            for path in ("/", "/api/cluster", "/api/v0/actors", "/api/memory", "/api/logs"):
                request = urllib.request.Request(
                    base + path, headers={"Authorization": f"Bearer {token}"}
                )
                urllib.request.urlopen(request, timeout=30).read()
        time.sleep(settle)
        total, count = pss(tree(pid))
        return {"pss_mib": round(total / 2**20, 1), "processes": count}
    finally:
        zray_cli(root, "stop")
        shutil.rmtree(root, ignore_errors=True)


def ray_memory(dashboard: bool, settle: float) -> dict:
    temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    args = [
        f"{RAY_VENV}/ray",
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "2",
        f"--temp-dir={temp}",
        f"--dashboard-port={free_port()}",
        f"--include-dashboard={'true' if dashboard else 'false'}",
        "--disable-usage-stats",
    ]
    started = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        time.sleep(settle)
        mine = [
            p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])
        ]
        mine += [c for p in list(mine) for c in p.children(recursive=True) if c not in mine]
        total, count = pss(set(mine))
        return {"pss_mib": round(total / 2**20, 1), "processes": count}
    finally:
        for process in psutil.process_iter(["cmdline"]):
            if temp in " ".join(process.info["cmdline"] or []):
                try:
                    for child in process.children(recursive=True):
                        child.send_signal(signal.SIGKILL)
                    process.send_signal(signal.SIGKILL)
                except psutil.NoSuchProcess:
                    pass
        shutil.rmtree(temp, ignore_errors=True)


def cmd_memory(args) -> dict:
    results: dict = {}
    for run in range(args.runs):
        for name, measure in (
            ("zray, dashboard off", lambda: zray_memory("off", args.settle)),
            ("zray, dashboard on", lambda: zray_memory("on", args.settle)),
            (
                "zray, dashboard on, after its pages were loaded",
                lambda: zray_memory("visited", args.settle),
            ),
            ("Ray 2.60, dashboard on", lambda: ray_memory(True, args.settle)),
            ("Ray 2.60, dashboard off", lambda: ray_memory(False, args.settle)),
        ):
            if name.startswith("Ray") and not os.path.exists(f"{RAY_VENV}/ray"):
                continue
            results.setdefault(name, []).append(measure())
            print(name, results[name][-1], flush=True)
    return {
        name: {
            "pss_mib": statistics.median(r["pss_mib"] for r in runs),
            "processes": runs[-1]["processes"],
        }
        for name, runs in results.items()
    }


# ---------------------------------------------------------------------------- init() time

STARTUP_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
import zray as ray
start = time.perf_counter()
ray.init(num_cpus=2, include_dashboard={include}, logging_level="warning")
@ray.remote
def f():
    return 1
ray.get(f.remote())
print(time.perf_counter() - start)
ray.shutdown()
"""


def cmd_startup(args) -> dict:
    """init() plus a first task, with and without the dashboard, alternated (fresh processes)."""
    times: dict = {True: [], False: []}
    root = tempfile.mkdtemp(prefix="zb", dir="/tmp")
    env = dict(os.environ, ZRAY_SESSION_DIR_ROOT=root)
    try:
        for _ in range(args.runs):
            for include in (False, True):
                out = subprocess.run(
                    [sys.executable, "-c", STARTUP_SCRIPT.format(root=ROOT, include=include)],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    env=env,
                )
                times[include].append(float(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        f"init() + first task, include_dashboard={include} (median ms)": round(
            statistics.median(values) * 1000
        )
        for include, values in times.items()
    }


# ---------------------------------------------------------------------------- page loads

PAGES = {
    "overview": "#nodes tbody tr",
    "actors": "#actors",
    "jobs": "#jobs tbody tr",
    "objects": "#objects",
    "logs": "#log-files a",
}


def cmd_pages(args) -> dict:
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, ROOT)
    import numpy as np

    import zray as ray

    context = ray.init(num_cpus=2, logging_level="warning")
    from zray._private.core import runtime

    base, token = "http://" + context.dashboard_url, runtime.core.creds.token

    @ray.remote(num_cpus=0)
    class Idle:
        def ping(self):
            return 1

    results: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.set_default_timeout(120_000)
        start = time.perf_counter()
        tab.goto(f"{base}/?token={token}#/overview")
        tab.wait_for_selector(PAGES["overview"])
        results["first visit (starts the dashboard process), overview"] = round(
            (time.perf_counter() - start) * 1000
        )

        def load_all(label: str):
            for page, selector in PAGES.items():
                times = []
                for _ in range(args.repeat):
                    tab.goto("about:blank")
                    start = time.perf_counter()
                    tab.goto(f"{base}/#/{page}")
                    tab.wait_for_selector(selector)
                    times.append((time.perf_counter() - start) * 1000)
                results[f"{label}, {page}"] = round(statistics.median(times))

        load_all("idle cluster")
        actors = [Idle.remote() for _ in range(args.actors)]
        ray.get([a.ping.remote() for a in actors], timeout=600)
        refs = [ray.put(np.zeros(16)) for _ in range(args.objects)]
        load_all(f"{args.actors} actors, {args.objects} objects")
        browser.close()
    del refs, actors
    ray.shutdown()
    return results


def cmd_tasks(args) -> dict:
    """The tasks page and the overview with `--tasks` finished tasks on the cluster: from
    navigation to the table on screen (median of --repeat), the bytes the tasks page fetched,
    and the CPU the dashboard and the head's node spend while a tab stays open on it."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, ROOT)
    import zray as ray

    context = ray.init(num_cpus=2, logging_level="warning")
    from zray._private.core import runtime

    base, token = "http://" + context.dashboard_url, runtime.core.creds.token

    @ray.remote
    def small(i):
        return i

    for start in range(0, args.tasks, 1000):
        ray.get([small.remote(i) for i in range(start, min(args.tasks, start + 1000))])
    time.sleep(3.0)  # every process has sent its task events
    results: dict = {"tasks": args.tasks}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.set_default_timeout(120_000)
        tab.goto(f"{base}/?token={token}#/overview")
        tab.wait_for_selector(PAGES["overview"])
        fetched = []
        tab.on(
            "response",
            # The page's JSON: /api/tasks (a page of rows), before it /api/v0/tasks (all).
            lambda r: (
                fetched.append(len(r.body()))
                if "/api/v0/tasks" in r.url or "/api/tasks" in r.url
                else None
            ),
        )
        for page, selector in (("tasks", "#tasks tbody tr"), ("overview", PAGES["overview"])):
            times = []
            for _ in range(args.repeat):
                tab.goto("about:blank")
                fetched.clear()
                start = time.perf_counter()
                tab.goto(f"{base}/#/{page}")
                tab.wait_for_selector(selector)
                times.append((time.perf_counter() - start) * 1000)
                if page == "tasks" and fetched:
                    results["tasks page, bytes of its first fetch"] = fetched[0]
            results[f"{page} page load ms (median of {args.repeat})"] = round(
                statistics.median(times)
            )
            results[f"{page} page load ms (all)"] = [round(t) for t in times]
        # A tab left open on the tasks page: what its polling costs the cluster.
        tab.goto(f"{base}/#/tasks")
        tab.wait_for_selector("#tasks tbody tr")
        processes = [p for p in psutil.Process().children(recursive=True)]
        watched = {
            "dashboard": [p for p in processes if "zray.dashboard" in " ".join(p.cmdline())],
            "node (head)": [p for p in processes if "zray.scripts.node" in " ".join(p.cmdline())],
        }

        def cpu(ps):
            return sum(p.cpu_times().user + p.cpu_times().system for p in ps)

        before = {k: cpu(v) for k, v in watched.items()}
        time.sleep(args.watch)
        for key, ps in watched.items():
            results[f"{key} CPU % with the tasks page open"] = round(
                100 * (cpu(ps) - before[key]) / args.watch, 1
            )
        browser.close()
    ray.shutdown()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    memory = sub.add_parser("memory")
    memory.add_argument("--settle", type=float, default=10.0)
    memory.add_argument("--runs", type=int, default=3)
    startup = sub.add_parser("startup")
    startup.add_argument("--runs", type=int, default=10)
    pages = sub.add_parser("pages")
    pages.add_argument("--actors", type=int, default=50)
    pages.add_argument("--objects", type=int, default=2000)
    pages.add_argument("--repeat", type=int, default=5)
    tasks = sub.add_parser("tasks")
    tasks.add_argument("--tasks", type=int, default=10_000)
    tasks.add_argument("--repeat", type=int, default=5)
    tasks.add_argument("--watch", type=float, default=15.0)
    args = parser.parse_args()
    commands = {
        "memory": cmd_memory,
        "startup": cmd_startup,
        "pages": cmd_pages,
        "tasks": cmd_tasks,
    }
    result = commands[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
