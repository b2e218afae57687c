"""Time of the first task in a new runtime env and of the next task in the same env.

    python perf/bench_runtime_env.py            # working_dir and env_vars
    python perf/bench_runtime_env.py --pip      # also a pip env (needs the package registry)

Each env is new to the cluster (a fresh working_dir content, a fresh pip spec), so the first
task pays the whole setup: packing and upload on the driver, fetch and unpack on the node, a
worker started for the env; the next task finds a warm worker of that env.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import zray as ray  # noqa: E402


def first_and_next(task, env: dict) -> tuple:
    started = time.perf_counter()
    ray.get(task.options(runtime_env=env).remote())
    first = time.perf_counter() - started
    started = time.perf_counter()
    ray.get(task.options(runtime_env=env).remote())
    return first, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pip", action="store_true")
    args = parser.parse_args()
    ray.init(num_cpus=2)

    @ray.remote
    def task():
        return os.getcwd()

    ray.get(task.remote())
    scratch = tempfile.mkdtemp(prefix="zray-bench-wd-", dir=os.getcwd())
    try:
        for index in range(20):  # ~2 MiB of sources: a modest project
            with open(os.path.join(scratch, f"module_{index}.py"), "w") as f:
                f.write(f"# {time.time_ns()}\n" + "x = 1\n" * 15000)
        rows = [
            ("env_vars", first_and_next(task, {"env_vars": {"RUN": str(time.time_ns())}})),
            ("working_dir (20 files, 2 MiB)", first_and_next(task, {"working_dir": scratch})),
        ]
        if args.pip:
            rows.append(
                (
                    "pip (pyjokes, new venv)",
                    first_and_next(
                        task, {"pip": ["pyjokes==0.6.0"], "env_vars": {"RUN": str(time.time_ns())}}
                    ),
                )
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        ray.shutdown()
    print("| env | first task (ms) | next task (ms) |\n| --- | ---: | ---: |")
    for name, (first, following) in rows:
        print(f"| {name} | {first * 1000:.1f} | {following * 1000:.2f} |")


if __name__ == "__main__":
    main()
