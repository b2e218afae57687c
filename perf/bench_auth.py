"""Cost of authentication and encryption on the control path, on an embedded cluster.

    python perf/bench_auth.py [--encrypt] [--seconds 5]

Prints synchronous tasks/s (`ray.get(f.remote())` in a loop) and the round trip of an actor
call (median and p99 microseconds). Authentication happens once per connection, so it should
not show; CURVE encrypts every message. See docs/benchmarks.md, "Security".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--encrypt", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    import zray as ray
    from zray._config import config

    config.encrypt = args.encrypt
    ray.init(num_cpus=2)

    @ray.remote
    def f():
        return 0

    @ray.remote
    class Pinger:
        def ping(self):
            return 0

    ray.get([f.remote() for _ in range(100)])
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        ray.get(f.remote())
        n += 1
    tasks = n / (time.perf_counter() - start)

    actor = Pinger.remote()
    ray.get([actor.ping.remote() for _ in range(200)])
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        t = time.perf_counter()
        ray.get(actor.ping.remote())
        samples.append(time.perf_counter() - t)
    samples.sort()
    mode = "CURVE" if args.encrypt else "PLAIN"
    print(
        f"{mode}: sync tasks {tasks:,.0f}/s; actor round trip median "
        f"{statistics.median(samples) * 1e6:.0f} us, p99 "
        f"{samples[int(len(samples) * 0.99)] * 1e6:.0f} us"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
