"""What a `list_tasks` query costs with many finished tasks on the cluster: the time of the
call (median of --repeat) for a few queries, with N tasks' events at the head.

    python perf/bench_state_queries.py --tasks 20000

The head answers `list_tasks` itself (filters, sort, limit; head/task_queries.py), so a query
of 10 rows ships 10 rows; before, it shipped every attempt with every field and the asker
filtered.
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
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    import zray as ray
    from zray.util import state

    ray.init(num_cpus=2, logging_level="warning")

    @ray.remote
    def small(i):
        return i

    @ray.remote
    def other(i):
        return i

    for start in range(0, args.tasks, 1000):
        ray.get([small.remote(i) for i in range(start, min(args.tasks, start + 1000))])
    ray.get([other.remote(i) for i in range(100)])
    time.sleep(3.0)  # every process has sent its task events
    queries = {
        "list_tasks(limit=10)": dict(limit=10),
        "list_tasks(filters=[name=other], limit=10)": dict(
            filters=[("name", "=", "other")], limit=10
        ),
        "list_tasks(filters=[func_or_class_name=other], limit=10)": dict(
            filters=[("func_or_class_name", "=", "other")], limit=10
        ),
        "list_tasks(limit=10000, detail=True)": dict(limit=10_000, detail=True),
        "summarize_tasks()": None,
    }
    results: dict = {"tasks": args.tasks + 100}
    for label, kwargs in queries.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            if kwargs is None:
                state.summarize_tasks(raise_on_missing_output=False)
            else:
                state.list_tasks(raise_on_missing_output=False, **kwargs)
            times.append((time.perf_counter() - start) * 1000)
        results[f"{label} ms"] = round(statistics.median(times), 1)
    ray.shutdown()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
