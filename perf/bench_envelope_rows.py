"""The envelope rows Ray led, measured the way docs/benchmarks.md ("the envelope rows Ray led")
reports them: alternating fresh clusters of each framework, several samples each, medians.

    bash perf/setup_ray.sh                                  # once: Ray 2.60.0 in its own venv
    python perf/bench_envelope_rows.py                      # args, get, firstput, queued-gc
    python perf/bench_envelope_rows.py --only get --rounds 2
    python perf/bench_envelope_rows.py --zray-path /tmp/before --label before  # another tree

Rows (each sample in a fresh cluster unless said):
  args      one task with 10,000 ObjectRef arguments (each a 10,000-int list), 3 calls per
            cluster on a warm worker: submission until the answer is back
  get       one get of 10,000 freshly put 160 KB arrays in shared memory, 5 per cluster
  firstput  the first put of an 800 MiB int64 array right after init
  queued    N tiny tasks submitted at once then drained, with the garbage collector's time
            in the driver (gc.callbacks); zray only (--queued, default 400,000)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ROWS = ("args", "get", "firstput", "queued")


def _emit(**fields):
    print("ROW " + json.dumps(fields), flush=True)


def child(row: str, framework: str, count: int):
    if framework == "ray":
        import ray
    else:
        import zray as ray
    import numpy as np

    if row == "firstput":
        array = np.arange(100 * 1024 * 1024, dtype=np.int64)
        ray.init(num_cpus=2, include_dashboard=False)
        start = time.perf_counter()
        ref = ray.put(array)
        _emit(samples=[array.nbytes / 1e9 / (time.perf_counter() - start)], unit="GB/s")
        del ref
    elif row == "args":
        ray.init(num_cpus=2, include_dashboard=False)
        refs = [ray.put([1 for _ in range(10_000)]) for _ in range(10_000)]

        @ray.remote
        def sum_args(*args):
            return sum(sum(arg) for arg in args)

        @ray.remote
        def warm():
            return 0

        ray.get([warm.remote() for _ in range(4)])
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            assert ray.get(sum_args.remote(*refs)) == 10**8
            samples.append(time.perf_counter() - start)
            time.sleep(0.5)
        _emit(samples=samples, unit="s")
    elif row == "get":
        ray.init(num_cpus=2, include_dashboard=False)
        samples = []
        for _ in range(5):
            refs = [ray.put(np.arange(20_000)) for _ in range(10_000)]
            time.sleep(0.3)
            start = time.perf_counter()
            values = ray.get(refs)
            samples.append(time.perf_counter() - start)
            del values, refs
            time.sleep(0.3)
        _emit(samples=samples, unit="s")
    elif row == "queued":
        import gc

        spent = {"gc": 0.0, "start": 0.0}

        def timing(phase, info):
            if phase == "start":
                spent["start"] = time.perf_counter()
            else:
                spent["gc"] += time.perf_counter() - spent["start"]

        gc.callbacks.append(timing)
        ray.init(num_cpus=2, include_dashboard=False)

        @ray.remote
        def tiny():
            return None

        ray.get([tiny.remote() for _ in range(100)])
        start, gc_before = time.perf_counter(), spent["gc"]
        refs = [tiny.remote() for _ in range(count)]
        submit, submit_gc = time.perf_counter() - start, spent["gc"] - gc_before
        time.sleep(1.0)
        start, gc_before = time.perf_counter(), spent["gc"]
        ray.get(refs)
        drain, drain_gc = time.perf_counter() - start, spent["gc"] - gc_before
        _emit(
            samples=[count / submit],
            unit="tasks/s submitted",
            detail=f"submit {submit:.1f} s (gc {submit_gc:.1f} s), drain {drain:.1f} s "
            f"({count / drain:,.0f}/s, gc {drain_gc:.1f} s)",
        )
    ray.shutdown()


def ray_python() -> str:
    venv = os.environ.get("RAY_VENV") or os.path.join(
        os.path.expanduser("~"), ".zray-perf", "ray-venv"
    )
    return os.path.join(venv, "bin", "python")


def run(row: str, framework: str, zray_path: str, count: int, timeout: float) -> dict:
    env = dict(os.environ)
    if framework == "ray":
        env.pop("PYTHONPATH", None)
        python = ray_python()
    else:
        env["PYTHONPATH"] = zray_path
        env.setdefault("ZRAY_SESSION_DIR_ROOT", os.path.join(tempfile.gettempdir(), "zray-rows"))
        python = sys.executable
    try:
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--child", row, framework, str(count)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
            timeout=timeout,
        ).stdout
    except subprocess.TimeoutExpired:
        return {"samples": [], "detail": f"timeout {timeout:.0f}s"}
    for line in out.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    return {"samples": [], "detail": "failed"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--only", default=",".join(ROWS))
    parser.add_argument("--frameworks", default="zray,ray")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queued", type=int, default=400_000)
    parser.add_argument("--zray-path", default=REPO, help="the zray tree to measure")
    parser.add_argument("--label", default="zray", help="what to call that tree in the output")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    for row in args.only.split(","):
        frameworks = ["zray"] if row == "queued" else args.frameworks.split(",")
        samples: dict = {f: [] for f in frameworks}
        for _ in range(args.rounds):
            for framework in frameworks:
                result = run(row, framework, args.zray_path, args.queued, args.timeout)
                samples[framework] += result["samples"]
                name = args.label if framework == "zray" else framework
                print(
                    f"{row} {name}: {[round(s, 3) for s in result['samples']]} "
                    f"{result.get('unit', '')} {result.get('detail', '')} "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        for framework, values in samples.items():
            if values:
                name = args.label if framework == "zray" else framework
                print(f"== {row} {name}: median {statistics.median(values):.3f} of {len(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
