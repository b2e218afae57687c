"""Ray's scalability envelope on one node, zray and Ray 2.60.0 side by side in one run.

    bash perf/setup_ray.sh                         # once: Ray 2.60.0 in its own venv
    python perf/envelope.py                        # every item, table on stdout
    python perf/envelope.py --only args,actors     # a subset
    python perf/envelope.py --queued 100000,1000000 --write /tmp/envelope.md

Each (item, framework) runs in a fresh child process (`--child`), zray under this interpreter
with the checkout on PYTHONPATH, Ray under the venv's python (never imported here). While it
runs, this process samples the memory of the child and all its descendants (the driver and
every runtime process it started: Ray's GCS, raylet, workers; zray's node, zygote, workers)
every 0.5 s and keeps the peak of their summed PSS. A child over --mem-cap-gib of PSS is
killed (Ray's actors take ~57 MB each: a thousand would exhaust this machine), and so is one
over --timeout; the row then says how far it got. Items follow Ray's
release/benchmarks/single_node/test_single_node.py.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ITEMS = ("args", "returns", "get", "queued", "actors")


# ---------------------------------------------------------------- child side


def _emit(**fields):
    print("ENVELOPE " + json.dumps(fields), flush=True)


def child(item: str, framework: str, count: int):
    if framework == "ray":
        import ray
    else:
        import zray as ray
    import numpy as np

    ray.init(num_cpus=2, include_dashboard=False)
    _emit(phase="started")
    if item == "args":
        refs = [ray.put([1 for _ in range(10_000)]) for _ in range(count)]

        @ray.remote
        def sum_args(*args):
            return sum(sum(arg) for arg in args)

        start = time.perf_counter()
        assert ray.get(sum_args.remote(*refs)) == 10_000 * count
        _emit(seconds=time.perf_counter() - start)
    elif item == "returns":

        @ray.remote(num_returns=count)
        def many():
            return tuple(list(range(10_000)) for _ in range(count))

        start = time.perf_counter()
        values = ray.get(many.remote())
        assert len(values) == count and all(len(v) == 10_000 for v in values)
        _emit(seconds=time.perf_counter() - start)
    elif item == "get":
        # 160 KB arrays: above both runtimes' inline limit (100 KiB), so in shared memory.
        refs = [ray.put(np.arange(20_000)) for _ in range(count)]
        start = time.perf_counter()
        values = ray.get(refs)
        assert all(v.shape == (20_000,) for v in values)
        _emit(seconds=time.perf_counter() - start)
    elif item == "queued":

        @ray.remote
        def tiny():
            return None

        collector = _CollectorTime()
        _emit(phase="baseline")
        time.sleep(1.5)  # a memory sample of the idle runtime
        start = time.perf_counter()
        refs = [tiny.remote() for _ in range(count)]
        submitted = time.perf_counter()
        submit_gc = collector.take()
        _emit(phase="submitted", submit_seconds=submitted - start)
        time.sleep(1.0)
        # Tasks run while others are submitted: the drain's rate counts only those left.
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
        left = count - len(done)
        del done
        collector.take()
        drain_start = time.perf_counter()
        ray.get(refs)
        drained = time.perf_counter() - drain_start
        _emit(
            seconds=submitted - start + drained,
            submit_seconds=submitted - start,
            drain_seconds=drained,
            submit_gc=submit_gc,
            drain_gc=collector.take(),
            left=left,
        )
    elif item == "actors":

        @ray.remote(num_cpus=0)
        class Idle:
            def ping(self):
                return 1

        start = time.perf_counter()
        actors = []
        for batch in range(0, count, 50):  # created and called in batches: progress shows
            new = [Idle.remote() for _ in range(min(50, count - batch))]
            ray.get([a.ping.remote() for a in new])
            actors += new
            _emit(phase="actors", alive=len(actors), seconds=time.perf_counter() - start)
        ray.get([a.ping.remote() for a in actors])
        _emit(seconds=time.perf_counter() - start, alive=len(actors))
    time.sleep(1.0)  # one more memory sample with everything alive
    ray.shutdown()


class _CollectorTime:
    """The driver's time in the garbage collector (gc.callbacks), as [seconds, full
    collections] since the last `take`."""

    def __init__(self):
        import gc

        self.seconds, self.full, self._start = 0.0, 0, 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._start = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._start
        self.full += info["generation"] == 2

    def take(self) -> list:
        taken = [self.seconds, self.full]
        self.seconds, self.full = 0.0, 0
        return taken


# ---------------------------------------------------------------- parent side


def _tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def _pss(pid: int) -> tuple[int, int]:
    """(summed PSS in bytes, process count) of `pid` and its descendants."""
    total, count = 0, 0
    for proc in _tree(pid):
        try:
            with open(f"/proc/{proc.pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        count += 1
                        break
        except OSError:
            pass
    return total, count


def _kill_tree(pid: int):
    for proc in reversed(_tree(pid)):
        try:
            proc.send_signal(signal.SIGKILL)
        except Exception:  # noqa: BLE001 - already gone
            pass


def ray_python() -> str:
    venv = os.environ.get("RAY_VENV") or os.path.join(
        os.path.expanduser("~"), ".zray-perf", "ray-venv"
    )
    return os.path.join(venv, "bin", "python")


def run(item: str, framework: str, count: int, timeout: float, mem_cap: int) -> dict:
    env = dict(os.environ)
    if framework == "zray":
        env["PYTHONPATH"] = REPO
        env.setdefault(
            "ZRAY_SESSION_DIR_ROOT", os.path.join(tempfile.gettempdir(), "zray-envelope")
        )
        python = sys.executable
    else:
        env.pop("PYTHONPATH", None)
        env["RAY_DEDUP_LOGS"] = "0"
        python = ray_python()
    proc = subprocess.Popen(
        [python, os.path.abspath(__file__), "--child", item, framework, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        start_new_session=True,
    )
    result = {"peak_pss": 0, "peak_procs": 0}
    events = []

    def read():
        for line in proc.stdout:
            if line.startswith("ENVELOPE "):
                events.append(json.loads(line[len("ENVELOPE ") :]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stderr_tail = []
    threading.Thread(target=lambda: stderr_tail.extend(proc.stderr), daemon=True).start()
    deadline = time.monotonic() + timeout
    stop = None
    while proc.poll() is None:
        pss, procs = _pss(proc.pid)
        result["peak_pss"] = max(result["peak_pss"], pss)
        result["peak_procs"] = max(result["peak_procs"], procs)
        phase = events[-1].get("phase") if events else None
        if phase == "baseline":
            result.setdefault("baseline_pss", pss)  # before the first submission
        elif phase == "submitted" and "submitted_pss" not in result:
            result["submitted_pss"] = pss
        if pss > mem_cap:
            stop = f"stopped at {mem_cap / 2**30:.0f} GiB PSS"
        elif time.monotonic() > deadline:
            stop = f"timeout {timeout:.0f}s"
        if stop:
            _kill_tree(proc.pid)
            break
        time.sleep(0.5)
    proc.wait()
    reader.join(5)
    for event in events:
        result.update({k: v for k, v in event.items() if k != "phase"})
    if stop:
        result["stopped"] = stop
    elif proc.returncode != 0 or "seconds" not in result:
        why = " ".join("".join(stderr_tail[-3:]).split())[-200:]
        result["stopped"] = f"failed (exit {proc.returncode}): {why}"
    return result


def _mib(nbytes) -> str:
    return f"{nbytes / 2**20:,.0f} MiB" if nbytes < 10 * 2**30 else f"{nbytes / 2**30:.1f} GiB"


def describe(item: str, count: int, r: dict) -> str:
    if "stopped" in r:  # progress events carry seconds too: not a finished run
        got = f"{r['alive']:,} alive after {r['seconds']:.1f} s; " if "alive" in r else ""
        return f"{got}{r['stopped']} (peak {_mib(r['peak_pss'])}, {r['peak_procs']} procs)"
    text = f"{r['seconds']:.2f} s, peak {_mib(r['peak_pss'])}"
    if item == "queued":
        per_task = (r.get("submitted_pss", 0) - r.get("baseline_pss", 0)) / count
        text = (
            f"submit {r['submit_seconds']:.1f} s ({count / r['submit_seconds']:,.0f}/s), "
            f"drain {r['drain_seconds']:.1f} s ({count / r['drain_seconds']:,.0f}/s), "
            f"{per_task / 1024:.1f} KiB/queued task, peak {_mib(r['peak_pss'])}"
        )
        if "left" in r:  # the drain's rate over the tasks not finished when it began
            text += f"; {r['left']:,} left to drain ({r['left'] / r['drain_seconds']:,.0f}/s)"
        if "submit_gc" in r:  # the driver's garbage collector: seconds (full collections)
            (sub, sub_full), (dra, dra_full) = r["submit_gc"], r["drain_gc"]
            text += f"; gc {sub:.1f} s ({sub_full}) + {dra:.1f} s ({dra_full})"
    elif item == "actors":
        text += f" ({r['peak_pss'] / max(1, r['alive']) / 2**20:.1f} MiB/actor)"
    return text


LABELS = {
    "args": "one task, {n:,} ObjectRef args (each a 10,000-int list)",
    "returns": "one task, num_returns={n:,} (each a 10,000-int list)",
    "get": "one get of {n:,} objects in shared memory (160 KB arrays)",
    "queued": "{n:,} tiny tasks queued at once",
    "actors": "{n:,} actors created and called",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--only", default=",".join(ITEMS))
    parser.add_argument("--frameworks", default="zray,ray")
    parser.add_argument("--queued", default="100000,1000000")
    parser.add_argument("--actors", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--mem-cap-gib", type=float, default=14.0)
    parser.add_argument("--write", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    counts = {
        "args": [10_000],
        "returns": [3_000],
        "get": [10_000],
        "queued": [int(n) for n in args.queued.split(",") if n],
        "actors": [args.actors],
    }
    rows = []
    for item in args.only.split(","):
        for count in counts[item]:
            cells = {}
            for framework in args.frameworks.split(","):
                result = run(item, framework, count, args.timeout, int(args.mem_cap_gib * 2**30))
                cells[framework] = describe(item, count, result)
                print(
                    f"{item} {count} {framework}: {cells[framework]}", file=sys.stderr, flush=True
                )
            rows.append((LABELS[item].format(n=count), cells))
    frameworks = args.frameworks.split(",")
    lines = [
        "| item | " + " | ".join(frameworks) + " |",
        "| --- | " + " | ".join("---" for _ in frameworks) + " |",
    ]
    lines += [
        f"| {label} | " + " | ".join(cells.get(f, "") for f in frameworks) + " |"
        for label, cells in rows
    ]
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(args.write, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
