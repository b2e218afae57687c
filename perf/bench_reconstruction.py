"""Lineage reconstruction on a three-node loopback cluster: a chain of 3 tasks whose 100 MiB
outputs all live on one node (the driver holds only the last); that node is SIGKILLed and the
driver gets the last output. Prints the time from the kill to the value in hand (death
detection included), and what the node's arena held before the kill (the chain's freed
intermediates should not be there: their lineage is kept, not their values).

    python perf/bench_reconstruction.py [--rounds N]
    python perf/bench_reconstruction.py --head-restart   # the node dies while the head is away
    python perf/bench_reconstruction.py --actor   # both steps are calls of one actor

With --head-restart the head is SIGKILLed first, the node a moment later, and the head started
again on its state: the restarted head must find the node dead (its probe is refused) before
anything can be recomputed. Times are then from the node's kill, and from the head's return.
With --actor the two steps are calls of an actor on that node (max_restarts=-1,
max_task_retries=-1): their outputs are recomputed by calling its restarted instance again,
and the arena shows whether a done call's kept spec still holds its argument's value.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 100 * 2**20


def cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    ).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_dead(pid: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def arena(core, address: str) -> tuple[int, int]:
    from zray._private.wire import protocol as P

    reply, _ = core.requests.call(address, P.GetNodeStats(0), 30)
    store = reply.stats["store"]
    return store["objects"], store.get("used", 0)


def one_round(ray, head, victim_pid: int, head_restart: bool, actor: bool = False) -> dict:
    from zray._config import config
    from zray._private.core import runtime
    from zray._private.wire import protocol as P
    from zray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    core = runtime.core
    victim = [n["NodeID"] for n in ray.nodes() if n["Alive"] and "victim" in n["Resources"]][0]
    reply, _ = core.requests.call(core.head_address, P.GetNodes(False), config.rpc_timeout_s)
    address = next(n["address"] for n in reply.nodes if n["node_id"].hex() == victim)
    there = NodeAffinitySchedulingStrategy(victim, soft=True)

    @ray.remote(scheduling_strategy=there)
    def produce():
        return np.ones(SIZE // 8)

    @ray.remote(scheduling_strategy=there)
    def step(array):
        return array + 1

    if actor:

        @ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, scheduling_strategy=there)
        class Stepper:
            def step(self, array):
                return array + 1

        stepper = Stepper.remote()
        last = stepper.step.remote(stepper.step.remote(produce.remote()))
    else:
        last = step.remote(step.remote(produce.remote()))
    ray.wait([last], timeout=120, fetch_local=False)
    time.sleep(1.0)  # the intermediates' frees reach the node
    objects, used = arena(core, address)
    out = {"arena_objects": objects, "arena_mib": used / 2**20}
    if head_restart:
        head["kill"]()
        time.sleep(0.3)
    os.kill(victim_pid, signal.SIGKILL)
    killed = time.perf_counter()
    if head_restart:
        wait_dead(victim_pid)
        head["start"]()
        out["head_back_s"] = time.perf_counter() - killed
    value = ray.get(last, timeout=300)
    out["value_s"] = time.perf_counter() - killed
    assert value[0] == 3.0 and value.nbytes == SIZE
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--head-restart", action="store_true")
    parser.add_argument("--actor", action="store_true")
    opts = parser.parse_args()
    root = tempfile.mkdtemp(prefix="zrc", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    os.environ.update(ZRAY_SESSION_DIR_ROOT=root)
    sys.path.insert(0, ROOT)
    import zray as ray

    port = free_port()
    state = os.path.join(root, "head-state.sqlite3")
    head = {"pid": 0}

    def start_head():
        head_env = dict(env)
        if head["pid"]:
            head_env.pop("ZRAY_TOKEN", None)  # a restart takes its state's token
        out = cli(
            "start",
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "1",
            "--head-state-path",
            state,
            env=head_env,
        )
        head["pid"] = int(re.search(r"\(pid (\d+)\)", out).group(1))
        return out

    def kill_head():
        os.kill(head["pid"], signal.SIGKILL)
        wait_dead(head["pid"])

    head.update(start=start_head, kill=kill_head)
    results = []
    try:
        out = start_head()
        address = re.search(r"Head address: (\S+)", out).group(1)
        token = re.search(r"Cluster token: (\S+)", out).group(1)
        env["ZRAY_TOKEN"] = token
        cli(
            "start",
            f"--address={address}",
            "--num-cpus",
            "1",
            "--resources",
            '{"driver": 1}',
            env=env,
        )
        os.environ["ZRAY_TOKEN"] = token
        # The driver attaches to the non-victim node: a driver dies with its node, and the
        # head's node dies with the head.
        from zray._private.common import cluster_info

        def driver_node(address, creds):
            for entry in cluster_info.fetch_nodes(address, creds):
                if entry["alive"] and "driver" in entry["resources"]:
                    return entry
            raise RuntimeError("no driver node")

        cluster_info.local_node_of = driver_node
        ray.init(address=address)
        for _ in range(opts.rounds):
            out = cli(
                "start",
                f"--address={address}",
                "--num-cpus",
                "1",
                "--resources",
                '{"victim": 1}',
                env=env,
            )
            victim_pid = int(re.search(r"\(pid (\d+)\)", out).group(1))
            while not any(n["Alive"] and "victim" in n["Resources"] for n in ray.nodes()):
                time.sleep(0.1)
            result = one_round(ray, head, victim_pid, opts.head_restart, opts.actor)
            results.append(result)
            print(
                f"chain of 3 x 100 MiB{' (2 actor calls)' if opts.actor else ''}: arena before the kill {result['arena_objects']} "
                f"object(s), {result['arena_mib']:.0f} MiB; value in hand "
                f"{result['value_s']:.2f} s after SIGKILL"
                + (
                    f" (head back {result['head_back_s']:.2f} s after it)"
                    if "head_back_s" in result
                    else ""
                ),
                flush=True,
            )
        ray.shutdown()
    finally:
        subprocess.run(
            [sys.executable, "-m", "zray.scripts.cli", "stop", "--force"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
