"""CPU per async actor call by thread, in the driver and in the actor's worker (issue 20, part 4):
`ray.get([a.small_value.remote() for _ in range(1000)])`, Ray's microbenchmark body, in rounds.

    python perf/actor_call_threads.py [--calls 20000] [--rounds 3]

Each thread's time on CPU comes from /proc/<pid>/task/<tid>/schedstat (nanoseconds, Linux), so
the driver's main thread (remote() and get) and its I/O thread (answers read while the main
thread submits, housekeeping) are told apart; 40,000 calls/s on two cores needs each process
at or under ~25 us per call.
"""

from __future__ import annotations

import argparse
import os
import time


def thread_cpu_ns(pid: int) -> dict:
    """{thread id: ns on CPU so far} of every thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return out


def per_call(before: dict, after: dict, calls: int) -> dict:
    return {key: (ns - before.get(key, 0)) / calls / 1e3 for key, ns in after.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import zray as ray

    ray.init(num_cpus=2)
    try:

        @ray.remote
        class Actor:
            def small_value(self):
                return b"ok"

            def pid(self):
                return os.getpid()

        from zray._private.core import runtime

        actor = Actor.remote()
        worker = ray.get(actor.pid.remote())
        me, io_thread_id = os.getpid(), runtime.core.io_thread.native_id

        def body():
            ray.get([actor.small_value.remote() for _ in range(1000)])

        for _ in range(3):
            body()  # warm: connection open, actor alive
        time.sleep(0.3)
        batches = max(1, args.calls // 1000)
        for _ in range(args.rounds):
            driver0, worker0, t0 = thread_cpu_ns(me), thread_cpu_ns(worker), time.perf_counter()
            for _ in range(batches):
                body()
            wall = time.perf_counter() - t0
            n = batches * 1000
            driver = per_call(driver0, thread_cpu_ns(me), n)
            actor_worker = per_call(worker0, thread_cpu_ns(worker), n)
            main_thread, io_thread = driver.get(me, 0.0), driver.get(io_thread_id, 0.0)
            print(
                f"{n / wall:,.0f} calls/s; driver {sum(driver.values()):.1f} us "
                f"(main {main_thread:.1f}, I/O {io_thread:.1f}); actor's worker "
                f"{sum(actor_worker.values()):.1f} us; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
