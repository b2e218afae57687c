"""What serving Prometheus metrics costs a node: idle RSS of the node daemon with metrics off and
on, and the latency of a scrape (idle, and with many user metric series).

    python perf/metrics_overhead.py [--scrapes 200] [--series 1000]

Each configuration runs in a fresh embedded cluster (`init(num_cpus=2)`, plus
`_metrics_export_port=0` for "on"); the daemon is measured 3 s after init, when its workers
have started and it is idle. Numbers go to docs/benchmarks.md ("Metrics, logs and progress
bars").
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CHILD = """
import json, sys, time, urllib.request
import psutil
import zray
import zray._driver_init

metrics_on, scrapes, series = {metrics_on}, {scrapes}, {series}
kwargs = {{"_metrics_export_port": 0}} if metrics_on else {{}}
zray.init(num_cpus=2, **kwargs)
info = zray._driver_init._embedded.info
time.sleep(3)
daemon = psutil.Process(info["pid"])
out = {{"rss_mib": daemon.memory_info().rss / 2**20,
        "uss_mib": daemon.memory_full_info().uss / 2**20}}
if metrics_on:
    url = f"http://127.0.0.1:{{info['metrics_export_port']}}/metrics"

    def timed(n):
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=10).read()
            samples.append((time.perf_counter() - start) * 1000)
        return samples, len(body)

    idle, idle_bytes = timed(scrapes)

    @zray.remote
    def record(n):
        from zray.util.metrics import Counter
        counter = Counter("perf_series", tag_keys=("key",))
        for i in range(n):
            counter.inc(tags={{"key": str(i)}})

    zray.get(record.remote(series), timeout=60)
    time.sleep(2.5)  # reported, then published
    loaded, loaded_bytes = timed(scrapes)
    out.update(idle_ms=idle, idle_bytes=idle_bytes, loaded_ms=loaded, loaded_bytes=loaded_bytes)
zray.shutdown()
print("RESULT " + json.dumps(out))
"""


def run(metrics_on: bool, scrapes: int, series: int) -> dict:
    code = CHILD.format(metrics_on=metrics_on, scrapes=scrapes, series=series)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    if result.returncode or not line:
        raise SystemExit(f"run failed:\n{result.stderr}")
    return json.loads(line[0][len("RESULT ") :])


def percentile(samples: list, q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="fresh clusters per setting")
    args = parser.parse_args()
    off, on = [], []
    for _ in range(args.repeats):  # alternating, so drift in the machine's load hits both
        off.append(run(False, args.scrapes, args.series))
        on.append(run(True, args.scrapes, args.series))
    print("| node daemon, idle | metrics off | metrics on |")
    print("| --- | --- | --- |")
    for key in ("rss_mib", "uss_mib"):
        print(
            f"| {key[:3].upper()} (MiB, median of {args.repeats}) | "
            f"{statistics.median(r[key] for r in off):.1f} | "
            f"{statistics.median(r[key] for r in on):.1f} |"
        )
    print()
    print("| scrape of /metrics | median ms | p99 ms | body bytes |")
    print("| --- | --- | --- | --- |")
    for label, key in (("idle node", "idle"), (f"+ {args.series} user series", "loaded")):
        samples = [s for r in on for s in r[f"{key}_ms"]]
        print(
            f"| {label} | {statistics.median(samples):.2f} | {percentile(samples, 0.99):.2f} | "
            f"{on[-1][f'{key}_bytes']} |"
        )


if __name__ == "__main__":
    main()
