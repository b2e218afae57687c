"""Sync calls against the bare round trip, interleaved in one run (issue 20, part 4): the
target is a sync task and a sync actor call each within 1.2x of a Python ZeroMQ round trip
measured at the same time.

    python perf/sync_vs_roundtrip.py [--rounds 15] [--n 1000]

On a shared two-core machine the load moves every figure 2-3x within minutes (docs/
benchmarks.md), so separate runs of perf/bench_roundtrip.py and of the sync rows compare
different machines. Here the echo servers run beside one zray cluster, and each round times N
round trips of each kind back to back, in an order that rotates every round: a ZeroMQ
DEALER/ROUTER pair and a REQ/REP pair over ipc (libzmq's I/O thread on both sides, as
bench_roundtrip.py), a Unix stream socket with blocking reads, `ray.get(a.small_value.remote())`
and `ray.get(small_value.remote())` (Ray's microbenchmark bodies, perf/workloads.py). Each
round gives each kind's microseconds per round trip and the ratio of each sync row to that
round's ZeroMQ figure; the medians over the rounds are printed, with the load average.
The echo servers are plain Python processes started before the cluster (no zray code).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MESSAGE = b"x" * 200


def _echo_zmq(path: str, kind: str):
    import zmq

    context = zmq.Context()
    server = context.socket(zmq.ROUTER if kind == "dealer" else zmq.REP)
    server.bind(path)
    print("ready", flush=True)
    while True:
        frames = server.recv_multipart()
        if frames[-1] == b"stop":
            return
        server.send_multipart(frames)


def _echo_unix(fd: int):
    sock = socket.socket(fileno=fd)
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


class Peers:
    """The bare echo servers and this process's ends of them."""

    def __init__(self, directory: str):
        import zmq

        self.children = []
        self.context = zmq.Context()
        self.zmq = {}
        for kind, client_type in (("dealer", zmq.DEALER), ("req", zmq.REQ)):
            path = f"ipc://{os.path.join(directory, kind)}"
            child = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--echo-zmq", path, kind],
                stdout=subprocess.PIPE,
            )
            child.stdout.readline()  # bound
            self.children.append(child)
            client = self.context.socket(client_type)
            client.connect(path)
            client.send(b"ping")  # the first message waits for the connection
            client.recv()
            self.zmq[kind] = client
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.children.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--echo-unix", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        )
        theirs.close()
        self.unix = ours

    def zmq_round_trips(self, kind: str, n: int):
        client = self.zmq[kind]
        for _ in range(n):
            client.send(MESSAGE)
            client.recv()

    def unix_round_trips(self, n: int):
        sock, size = self.unix, len(MESSAGE)
        for _ in range(n):
            sock.sendall(MESSAGE)
            got = 0
            while got < size:
                got += len(sock.recv(65536))

    def close(self):
        for client in self.zmq.values():
            client.send(b"stop")
            client.close(0)
        self.unix.close()
        for child in self.children:
            child.wait(timeout=10)
        self.context.term()


def measure(rounds: int, n: int) -> dict:
    import zray as ray

    with tempfile.TemporaryDirectory(prefix="zray-syncrt-") as directory:
        peers = Peers(directory)
        ray.init(num_cpus=2)
        try:

            @ray.remote
            def small_value():
                return b"ok"

            @ray.remote(num_cpus=0)
            class Actor:
                def small_value(self):
                    return b"ok"

            actor = Actor.remote()
            kinds = {
                "zmq dealer/router": lambda: peers.zmq_round_trips("dealer", n),
                "zmq req/rep": lambda: peers.zmq_round_trips("req", n),
                "unix blocking": lambda: peers.unix_round_trips(n),
                "actor calls sync": lambda: [ray.get(actor.small_value.remote()) for _ in range(n)],
                "tasks sync": lambda: [ray.get(small_value.remote()) for _ in range(n)],
            }
            for body in kinds.values():
                body()  # warm: workers up, connections open
            names = list(kinds)
            per_round: list[dict] = []
            loads = []
            for r in range(rounds):
                us = {}
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    start = time.perf_counter()
                    kinds[name]()
                    us[name] = (time.perf_counter() - start) / n * 1e6
                per_round.append(us)
                loads.append(os.getloadavg()[0])
        finally:
            ray.shutdown()
            peers.close()
    result = {name: statistics.median(r[name] for r in per_round) for name in names}
    for row in ("actor calls sync", "tasks sync"):
        result[f"{row} / zmq dealer"] = statistics.median(
            r[row] / r["zmq dealer/router"] for r in per_round
        )
    result["load"] = (min(loads), max(loads))
    result["rounds"] = per_round
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=1000, help="round trips per kind per round")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--echo-zmq", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--echo-unix", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_zmq:
        _echo_zmq(*args.echo_zmq)
        return 0
    if args.echo_unix is not None:
        _echo_unix(args.echo_unix)
        return 0
    result = measure(args.rounds, args.n)
    if args.json:
        print(json.dumps(result))
        return 0
    for name, value in result.items():
        if name == "load":
            print(f"{'load average (1 min)':32s} {value[0]:.1f}-{value[1]:.1f}")
        elif name != "rounds":
            unit = "x" if name.endswith("/ zmq dealer") else "us"
            print(f"{name:32s} {value:8.2f} {unit} (median of {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
