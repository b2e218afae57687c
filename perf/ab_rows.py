"""zray against itself: every row of perf/compare.py at two git revisions, alternating.

    python perf/ab_rows.py --before 71b1cbe --after HEAD --rounds 2
    python perf/ab_rows.py --before HEAD~1 --only "tasks sync" --only "actor calls sync" --rounds 4

Each revision is exported (perf/compare.py's --snapshot), then each row runs in a fresh process
per revision, before and after alternating and the order flipping every round, so the load of
a shared machine falls on both alike. Prints a Markdown table: every run's value, and the
change of the medians. `--json PATH` keeps the raw results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402


def _values(workload: str, result: dict) -> dict:
    """{row name: (value, unit, better)} of one run, sub-rows included."""
    return {
        (f"{workload}: {label}" if label else workload): (
            row.get("value"),
            row.get("unit"),
            row.get("better"),
        )
        for label, row in compare.rows_of(result)
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, metavar="REV")
    parser.add_argument("--after", default="HEAD", metavar="REV")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--timeout", type=float, default=150.0)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    trees = {}
    for label, rev in (("before", args.before), ("after", args.after)):
        path, commit = compare.snapshot(rev)
        compare.compile_bytecode(path)
        trees[label] = (path, commit)
    settings = compare.QUICK if args.quick else compare.FULL
    names = compare.workload_names()
    if args.only:
        names = [n for n in names if any(o in n for o in args.only)]
    log_dir = tempfile.mkdtemp(prefix="zray-ab-")
    runs: dict = {}  # row -> label -> [values]
    units: dict = {}
    raw = []
    for round_index in range(args.rounds):
        order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
        for name in names:
            for label in order:
                compare.ZRAY_PATH = trees[label][0]
                result = compare.run_one("zray", name, settings, args.timeout, log_dir)
                result.update(label=label, round=round_index, load=os.getloadavg()[0])
                raw.append(result)
                for row, (value, unit, better) in _values(name, result).items():
                    runs.setdefault(row, {}).setdefault(label, []).append(value)
                    units[row] = (unit, better)
                print(
                    f"round {round_index} {label:6s} {name:45s} {result.get('value')} "
                    f"(load {result['load']:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    before, after = trees["before"][1], trees["after"][1]
    print(f"| row | unit | {before} (before) | {after} (after) | change of medians |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row, by_label in runs.items():
        unit, better = units[row]
        cells, medians = [], []
        for label in ("before", "after"):
            values = [v for v in by_label.get(label, []) if isinstance(v, (int, float))]
            cells.append(" / ".join(compare.fmt(v, unit) for v in values) or "error")
            medians.append(statistics.median(values) if values else None)
        change = ""
        if medians[0] and medians[1] is not None:
            change = f"{(medians[1] / medians[0] - 1) * 100:+.0f}% ({better} is better)"
        print(f"| {row} | {unit} | {cells[0]} | {cells[1]} | {change} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
