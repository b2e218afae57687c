"""What the state queries cost with many tasks, actors and objects on the cluster: the time of
each call (median of --repeat), with N finished tasks' events at the head, A actors (created
in batches and killed, so the head's table holds them all, dead) and R object references
held by the driver.

    python perf/bench_state_queries.py --tasks 10000 --actors 1000 --objects 2000

The head answers `list_tasks` (head/task_queries.py), `list_actors`, `summarize_tasks`,
`summarize_actors` and the timeline itself, each node `list_workers`, `list_objects` and its
part of `summarize_objects` (common/state_rows.py, common/state_summaries.py), so a query of 10
rows ships 10 rows per source; before, whole tables were shipped and the asker filtered.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--actors", type=int, default=1_000)
    parser.add_argument("--objects", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="", help="run the queries whose label contains this")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="measure Ray instead (run with Ray's Python, e.g. ~/.zray-perf/ray-default-venv)",
    )
    args = parser.parse_args()
    if args.ray:
        import ray
        from ray.util import state

        ray.init(num_cpus=2, include_dashboard=True, logging_level="warning")
    else:
        sys.path.insert(0, ROOT)
        import zray as ray
        from zray.util import state
        from zray.util.state import timeline

        ray.init(num_cpus=2, logging_level="warning")

    @ray.remote
    def small(i):
        return i

    @ray.remote
    def other(i):
        return i

    @ray.remote(num_cpus=0)
    class Counter:
        def ping(self):
            return 1

    for start in range(0, args.tasks, 1000):
        ray.get([small.remote(i) for i in range(start, min(args.tasks, start + 1000))])
    ray.get([other.remote(i) for i in range(100)])
    for start in range(0, args.actors, 50):
        batch = [Counter.remote() for _ in range(min(50, args.actors - start))]
        ray.get([a.ping.remote() for a in batch])
        for actor in batch:
            ray.kill(actor)
    held = [ray.put(i) for i in range(args.objects)]
    time.sleep(3.0)  # every process has sent its task events
    queries = {
        "list_tasks(limit=10)": lambda: state.list_tasks(limit=10, raise_on_missing_output=False),
        "summarize_tasks()": lambda: state.summarize_tasks(raise_on_missing_output=False),
        "list_actors(limit=10)": lambda: state.list_actors(limit=10),
        "list_actors(filters=[state=DEAD], limit=10)": lambda: state.list_actors(
            filters=[("state", "=", "DEAD")], limit=10
        ),
        "list_actors(limit=1000, detail=True)": lambda: state.list_actors(limit=1000, detail=True),
        "summarize_actors()": lambda: state.summarize_actors(),
        "list_workers(limit=10)": lambda: state.list_workers(limit=10),
        "list_objects(limit=10)": lambda: state.list_objects(limit=10),
        "summarize_objects()": lambda: state.summarize_objects(),
        "timeline() (waits a report interval first)": lambda: ray.timeline(),
    }
    if not args.ray:
        queries["zray timeline's dump"] = lambda: timeline.dump(None)
    results: dict = {"tasks": args.tasks + 100 + args.actors, "actors": args.actors}
    received = [] if args.ray else _count_received_bytes()
    for label, query in queries.items():
        if args.only and args.only not in label:
            continue
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            query()
            times.append((time.perf_counter() - start) * 1000)
        results[f"{label} ms"] = round(statistics.median(times), 1)
        if not args.ray:
            received.clear()
            query()
            results[f"{label} KB received"] = round(sum(received) / 1024, 1)
    del held
    ray.shutdown()
    print(json.dumps(results, indent=2))
    return 0


def _count_received_bytes() -> list:
    """The encoded size of every answer the state API receives, appended to the list returned
    (what crossed the wire to the asker; the load on a shared machine moves the times, not
    these)."""
    from zray._private.wire import codec
    from zray.util.state import _transport

    sizes: list = []
    gather = _transport.Connection.gather

    def counting(self, requests, timeout):
        answers = gather(self, requests, timeout)
        sizes.extend(sum(map(len, codec.encode(a))) for a in answers if a is not None)
        return answers

    _transport.Connection.gather = counting
    return sizes


if __name__ == "__main__":
    sys.exit(main())
