"""What task events cost a sync call, and on which side: sync tasks (or sync actor calls) in
ONE cluster, events switched off and on in ABBA blocks of short windows (off, on, on, off;
then on, off, off, on), on both sides, on the driver only (the worker's stay off) or on the
worker only (the driver's stay on). The figure is the median over blocks of each block's
difference (on - off): a block lasts ~0.1 s, so the machine's slow drift, which moves a
window's latency by more than the effect, cancels within it.

    python perf/events_sync_split.py                          # tasks: both, driver, worker
    python perf/events_sync_split.py --work actor --blocks 300
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=200, help="ABBA blocks per side")
    parser.add_argument("--window", type=int, default=500, help="sync calls per window")
    parser.add_argument("--work", choices=("task", "actor"), default="task")
    parser.add_argument("--sides", default="both,driver,worker")
    args = parser.parse_args()

    import zray as ray
    from zray._private.core import runtime

    ray.init(num_cpus=2, include_dashboard=False)

    @ray.remote
    def small_value():
        return 1

    @ray.remote
    def set_worker_events(on: bool):
        from zray._private.core import runtime as worker_runtime

        worker_runtime.core.task_events.enabled = on
        return 1

    @ray.remote
    class Echo:
        def small_value(self):
            return 1

        def set_events(self, on: bool):
            from zray._private.core import runtime as worker_runtime

            worker_runtime.core.task_events.enabled = on
            return 1

    if args.work == "actor":
        echo = Echo.remote()
        call, set_events = echo.small_value, echo.set_events
    else:  # the one leased worker takes them all, in practice
        call, set_events = small_value, set_worker_events
    for _ in range(3000):
        ray.get(call.remote())
    core = runtime.core

    def window() -> float:
        for _ in range(50):
            ray.get(call.remote())
        start = time.perf_counter()
        for _ in range(args.window):
            ray.get(call.remote())
        return 1e6 * (time.perf_counter() - start) / args.window

    for side in args.sides.split(","):
        offs, ons, diffs = [], [], []
        for block in range(args.blocks):
            order = (False, True, True, False) if block % 2 == 0 else (True, False, False, True)
            latency: dict = {False: [], True: []}
            for on in order:
                core.task_events.enabled = on if side != "worker" else True
                worker_on = on if side != "driver" else False
                for _ in range(20):
                    ray.get(set_events.remote(worker_on))
                latency[on].append(window())
            off, on_ = statistics.mean(latency[False]), statistics.mean(latency[True])
            offs.append(off)
            ons.append(on_)
            diffs.append(on_ - off)
        quartiles = statistics.quantiles(diffs, n=4)
        median_off = statistics.median(offs)
        print(
            f"{args.work} {side:6}: off {median_off:.1f} us, on {statistics.median(ons):.1f} us; "
            f"median paired difference {statistics.median(diffs):+.2f} us "
            f"({100 * statistics.median(diffs) / median_off:+.1f}%), "
            f"quartiles {quartiles[0]:+.2f} .. {quartiles[2]:+.2f}"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
