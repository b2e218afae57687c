"""Running one benchmark on zray and on Ray 2.60.0 in the same run, and printing the table.

A benchmark script defines `measure(framework) -> dict` and calls `main(__file__, measure,
title, rows)`. Each framework runs in a subprocess of its own (`<script> inner <framework>`),
Ray under the venv's python that `perf/setup_ray.sh` makes: Ray is never imported here, and
each side starts from a fresh session directory that is removed afterwards.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def ray_python() -> str:
    venv = os.environ.get("RAY_VENV") or os.path.join(
        os.path.expanduser("~"), ".zray-perf", "ray-venv"
    )
    return os.path.join(venv, "bin", "python")


def run_both(script: str, timeout: float = 900) -> dict:
    """{framework: its measure() result, or None when it failed or Ray is not set up}."""
    results: dict = {}
    for framework, python in (("zray", sys.executable), ("ray", ray_python())):
        if not os.path.exists(python):
            print(f"no Ray venv at {python}: run bash perf/setup_ray.sh", file=sys.stderr)
            results[framework] = None
            continue
        root = tempfile.mkdtemp(prefix="zbench", dir="/tmp")  # short: Unix socket paths
        # Ray's token auth would need the token passed to joining nodes; zray keeps its own
        # (always on) auth, so any cost of it is on zray's side of the table.
        env = dict(
            os.environ,
            PYTHONPATH=REPO if framework == "zray" else "",
            ZRAY_SESSION_DIR_ROOT=root,
            RAY_TMPDIR=root,
            RAY_AUTH_MODE="disabled",
        )
        try:
            done = subprocess.run(
                [python, os.path.abspath(script), "inner", framework],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=root,
            )
            line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            results[framework] = json.loads(line[0][len("RESULT ") :]) if line else None
            if not line:
                print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return results


def print_table(title: str, rows: list, results: dict, digits: int = 2):
    """`rows`: (key, label, lower_is_better). The ratio column reads "times better"."""
    z, r = results.get("zray"), results.get("ray")
    print(f"| {title} | zray | Ray 2.60.0 | zray / Ray |")
    print("| --- | --- | --- | --- |")
    for key, label, lower_is_better in rows:
        zv = z[key] if z else math.nan
        rv = r[key] if r else math.nan
        ratio = (rv / zv if lower_is_better else zv / rv) if z and r else math.nan
        print(f"| {label} | {zv:,.{digits}f} | {rv:,.{digits}f} | {ratio:.1f}x |")


def main(script: str, measure, title: str, rows: list, digits: int = 2):
    if len(sys.argv) == 3 and sys.argv[1] == "inner":
        print("RESULT " + json.dumps(measure(sys.argv[2])), flush=True)
        return
    print_table(title, rows, run_both(script), digits)
