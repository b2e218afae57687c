"""Bare round trips between two Python processes: the limit column for sync calls and
pipelined (async) calls, measured on the transports zray uses, in the same run as the
figures compared with it.

    python perf/bench_roundtrip.py            # all rows, ~15 s
    python perf/bench_roundtrip.py --json     # one JSON object instead of the table

Rows: a 200-byte message echoed by a forked child, (1) over a Unix stream socketpair with
blocking reads (what a direct call costs without any framework: two wake-ups), (2) the same
with both ends polling for up to 200 us before they block, as zray's direct calls do
(`pacing.spin`), (3) over ZeroMQ DEALER/ROUTER on ipc (libzmq's I/O thread on both sides),
and REQ/REP. Pipelined rows keep WINDOW messages in flight and count echoes per second. Round trips are
the median of ROUNDS batches of N; nothing here is zray code.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import sys
import tempfile
import time

MESSAGE = b"x" * 200
N = 4000
ROUNDS = 5
WINDOW = 64
PIPELINE_S = 1.0
SPIN_S = 200e-6


def _spin_recv(sock, size):
    """Polls (yielding the CPU) for up to SPIN_S, then blocks: pacing.spin's pattern."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    deadline = time.perf_counter() + SPIN_S
    while not poller.poll(0) and time.perf_counter() < deadline:
        os.sched_yield()
    return sock.recv(size)


def _unix_echo(sock, spin):
    while True:
        data = _spin_recv(sock, 65536) if spin else sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def unix_roundtrip(spin: bool) -> float:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        parent.close()
        try:
            _unix_echo(child, spin)
        finally:
            os._exit(0)
    child.close()
    size = len(MESSAGE)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            parent.sendall(MESSAGE)
            got = 0
            while got < size:
                got += len(_spin_recv(parent, 65536) if spin else parent.recv(65536))
        rounds.append((time.perf_counter() - start) / N * 1e6)
    parent.close()
    os.waitpid(pid, 0)
    return statistics.median(rounds)


def unix_pipelined() -> float:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        parent.close()
        try:
            _unix_echo(child, False)
        finally:
            os._exit(0)
    child.close()
    size = len(MESSAGE)
    sent = received = 0
    start = time.perf_counter()
    while time.perf_counter() - start < PIPELINE_S:
        while sent - received < WINDOW:
            parent.sendall(MESSAGE)
            sent += 1
        received += len(parent.recv(65536)) // size  # whole messages only: all are equal
    rate = received / (time.perf_counter() - start)
    parent.close()
    os.waitpid(pid, 0)
    return rate


def _zmq_pair(directory, req_rep: bool = False):
    """A forked echo server and our client: DEALER/ROUTER (what zray's ZeroMQ paths use), or
    REQ/REP (the textbook pair, with its strict send/receive alternation)."""
    import zmq

    path = "ipc://" + os.path.join(directory, "echo-rep" if req_rep else "echo")
    pid = os.fork()
    if pid == 0:
        try:
            context = zmq.Context()
            router = context.socket(zmq.REP if req_rep else zmq.ROUTER)
            router.bind(path)
            while True:
                frames = router.recv_multipart()
                if frames[-1] == b"stop":
                    break
                router.send_multipart(frames)
            router.close(0)
            context.term()
        finally:
            os._exit(0)
    context = zmq.Context()
    dealer = context.socket(zmq.REQ if req_rep else zmq.DEALER)
    dealer.connect(path)
    dealer.send(b"ping")  # the first message waits for the connection
    dealer.recv()
    return pid, context, dealer


def _zmq_stop(pid, context, dealer):
    dealer.send(b"stop")
    os.waitpid(pid, 0)
    dealer.close(0)
    context.term()


def zmq_roundtrip(directory, req_rep: bool = False) -> float:
    pid, context, dealer = _zmq_pair(directory, req_rep)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(N):
            dealer.send(MESSAGE)
            dealer.recv()
        rounds.append((time.perf_counter() - start) / N * 1e6)
    _zmq_stop(pid, context, dealer)
    return statistics.median(rounds)


def zmq_pipelined(directory) -> float:
    pid, context, dealer = _zmq_pair(directory)
    sent = received = 0
    start = time.perf_counter()
    while time.perf_counter() - start < PIPELINE_S:
        while sent - received < WINDOW:
            dealer.send(MESSAGE)
            sent += 1
        dealer.recv()
        received += 1
    rate = received / (time.perf_counter() - start)
    while received < sent:
        dealer.recv()
        received += 1
    _zmq_stop(pid, context, dealer)
    return rate


def measure() -> dict:
    with tempfile.TemporaryDirectory(prefix="zray-roundtrip-") as directory:
        return {
            "unix round trip, blocking (us)": unix_roundtrip(False),
            "unix round trip, spinning 200 us (us)": unix_roundtrip(True),
            "zmq round trip, ipc (us)": zmq_roundtrip(directory),
            "zmq round trip, ipc, REQ/REP (us)": zmq_roundtrip(directory, True),
            f"unix pipelined, {WINDOW} in flight (msgs/s)": unix_pipelined(),
            f"zmq pipelined, {WINDOW} in flight (msgs/s)": zmq_pipelined(directory),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results = measure()
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results.items():
            print(f"{name:45s} {value:12,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
