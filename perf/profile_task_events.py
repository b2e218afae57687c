"""The share of task events in each process's work, from py-spy samples: a measure that a
loaded machine does not move, where throughput and CPU time per call do (spinning waits make
up most of a sync caller's CPU time, and other people's load changes how long they spin).

    python perf/profile_task_events.py                        # sync tasks, 12 s of samples
    python perf/profile_task_events.py --workload "actor calls async" --seconds 20

Each sample of a process's threads is idle (waiting: spinning, polling, reading a socket,
sleeping), in task events (any frame of core/task_events.py, the recorders and the flush, or a
line of a call that appends an event in place), or other work. The report is events / (events + other work), per process: what a cluster with
events off would not do. Needs py-spy (`pip install py-spy`) and the right to ptrace.
"""

from __future__ import annotations

import argparse
import ast
import collections
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Leaf frames of threads that wait: what they cost depends on the machine's load, not on the
# work asked of them.
IDLE_LEAVES = (
    "spin (",
    "poll (",
    "Poller.poll",
    "Server.poll",
    "recv_multipart",
    "_read_while_blocked",
    "_forward (",
    "wait (",
    "acquire",
    "sleep",
    "select",
)

WORKLOADS = {
    "tasks sync": "[ray.get(small_value.remote()) for _ in range(1000)]",
    "tasks async": "ray.get([small_value.remote() for _ in range(1000)])",
    "actor calls async": "ray.get([actor.small_value.remote() for _ in range(1000)])",
    "actor calls sync": "[ray.get(actor.small_value.remote()) for _ in range(1000)]",
}

CHILD = """
import json, os, sys, time
import zray as ray
ray.init(num_cpus=1)

@ray.remote
def small_value():
    return b"ok"

@ray.remote
def pid():
    return os.getpid()

@ray.remote(num_cpus=0)
class Actor:
    def small_value(self):
        return b"ok"
    def pid(self):
        return os.getpid()

actor = Actor.remote()
pids = {{"driver": os.getpid(), "task worker": ray.get(pid.remote()),
        "actor worker": ray.get(actor.pid.remote())}}
print(json.dumps(pids), flush=True)
deadline, n = time.monotonic() + {seconds}, 0
while time.monotonic() < deadline:
    {batch}
    n += 1000
print(json.dumps({{"calls/s": n / {seconds}}}), flush=True)
ray.shutdown()
"""


# A call whose callee's text holds one of these records a task event in place (the submitters
# append their tuples to the buffer themselves: task_events.py's recorders are not called).
RECORDING_CALLEES = ("_record", "task_events", "events.run_", "events.ended")
FRAME = re.compile(r"\((\S+\.py):(\d+)\)")


@functools.lru_cache(maxsize=None)
def recording_lines(path: str) -> frozenset:
    """The lines of `path` inside a call that records a task event."""
    try:
        with open(path) as source:
            text = source.read()
    except OSError:
        return frozenset()
    lines: set = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            callee = ast.get_source_segment(text, node.func) or ""
            if any(mark in callee for mark in RECORDING_CALLEES):
                lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


def in_events(stack: str) -> bool:
    if "task_events.py" in stack:
        return True
    for path, line in FRAME.findall(stack):
        if "/zray/" in path and int(line) in recording_lines(path):
            return True
    return False


def classify(raw_path: str) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    with open(raw_path) as raw:
        for line in raw:
            stack, _, n = line.rstrip().rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            if in_events(stack):
                counts["events"] += int(n)
            elif any(mark in leaf for mark in IDLE_LEAVES):
                counts["idle"] += int(n)
            else:
                counts["work"] += int(n)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="tasks sync")
    parser.add_argument("--seconds", type=float, default=12.0, help="of samples")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    warmup_s = 4.0
    script = CHILD.format(seconds=args.seconds + warmup_s + 2, batch=WORKLOADS[args.workload])
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=REPO),
        cwd="/",
    )
    try:
        pids = json.loads(child.stdout.readline())
        worker = "task worker" if args.workload.startswith("tasks") else "actor worker"
        profiled = {"driver": pids["driver"], worker: pids[worker]}
        time.sleep(warmup_s)
        with tempfile.TemporaryDirectory() as scratch:
            spies = {
                role: subprocess.Popen(
                    [
                        "py-spy", "record", "--format", "raw", "--rate", str(args.rate),
                        "--duration", str(int(args.seconds)), "--pid", str(pid),
                        "--output", os.path.join(scratch, f"{pid}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for role, pid in profiled.items()
            }  # fmt: skip
            for spy in spies.values():
                spy.wait(timeout=args.seconds + 60)
            shares = {
                role: classify(os.path.join(scratch, f"{pid}.txt"))
                for role, pid in profiled.items()
            }
        rate = json.loads(child.stdout.readline())["calls/s"]
    finally:
        child.wait(timeout=120)
    load = os.getloadavg()[0]
    print(f"{args.workload}: {rate:,.0f} calls/s, load {load:.1f}")
    for role, counts in shares.items():
        busy = counts["events"] + counts["work"]
        print(
            f"  {role}: task events {100 * counts['events'] / max(1, busy):.1f}% of its work "
            f"({counts['events']} of {busy} busy samples; {counts['idle']} idle)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
