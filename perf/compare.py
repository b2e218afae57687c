"""Runs every workload of perf/workloads.py under zray and under Ray, prints a Markdown table.

    bash perf/setup_ray.sh                                  # once: Ray 2.60.0 in its own venv
    python perf/compare.py                                  # full run, table on stdout
    python perf/compare.py --quick --only "tasks sync"      # smoke run of a subset
    python perf/compare.py --write docs/benchmarks.md       # also write the results page

Each (workload, framework) pair runs in its own fresh subprocess with a timeout, alternating
frameworks per workload (zray, Ray, zray, Ray, ...).  A run that exceeds the timeout is killed
with all its descendants and shown as "timeout".  zray runs under this interpreter with the
checkout on PYTHONPATH; Ray runs under the python of the venv made by perf/setup_ray.sh
($RAY_VENV, default ~/.zray-perf/ray-venv).  Ray is never imported here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKLOADS_PY = os.path.join(HERE, "workloads.py")
DEFAULT_RAY_VENV = os.path.join(os.path.expanduser("~"), ".zray-perf", "ray-venv")
REPRO = "bash perf/setup_ray.sh && python perf/compare.py --write docs/benchmarks.md"

FULL = {
    "ZRAY_PERF_WARMUP_S": "0.5",
    "ZRAY_PERF_ROUND_S": "0.8",
    "ZRAY_PERF_ROUNDS": "3",
    "ZRAY_PERF_REPEATS": "5",
}
QUICK = {
    "ZRAY_PERF_WARMUP_S": "0.1",
    "ZRAY_PERF_ROUND_S": "0.2",
    "ZRAY_PERF_ROUNDS": "2",
    "ZRAY_PERF_REPEATS": "2",
}


def ray_python() -> str:
    """Same discovery as perf/setup_ray.sh: $RAY_VENV or ~/.zray-perf/ray-venv."""
    venv = os.environ.get("RAY_VENV") or DEFAULT_RAY_VENV
    return os.path.join(venv, "bin", "python")


def workload_names() -> list[str]:
    out = subprocess.run(
        [sys.executable, WORKLOADS_PY, "--list"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


SNAPSHOT_COMMIT = None
ZRAY_PATH = REPO  # directory holding the zray package to benchmark (--zray-path / --snapshot)


def snapshot(rev: str) -> tuple[str, str]:
    """Exports zray/ at git revision `rev` into a temporary directory, with the compiled
    extensions of the checkout copied in (they are build products, not in git), so a run
    measures one fixed commit even while the working tree is being edited."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev],
        cwd=REPO,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.strip()
    dest = tempfile.mkdtemp(prefix=f"zray-snapshot-{commit}-")
    import atexit
    import shutil

    atexit.register(shutil.rmtree, dest, True)
    archive = subprocess.Popen(["git", "archive", rev, "zray"], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", dest], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {rev} failed")
    fast = os.path.join(REPO, "zray", "_fast")
    for name in os.listdir(fast):
        if name.endswith((".so", ".pyd")):
            shutil.copy2(os.path.join(fast, name), os.path.join(dest, "zray", "_fast", name))
    return dest, commit


def child_env(framework: str, settings: dict, timeout: float) -> dict:
    env = dict(os.environ)
    env.update(settings)
    env["ZRAY_PERF_DUMP_AFTER_S"] = str(max(5.0, timeout - 5.0))
    # Ray: no usage-stats reporting (no network); the dashboard is off via init() args.
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_DISABLE_DOCKER_CPU_WARNING"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if framework == "zray":
        env["PYTHONPATH"] = ZRAY_PATH + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
    else:
        env.pop("PYTHONPATH", None)  # the Ray venv needs nothing from this checkout
    return env


def kill_tree(pid: int):
    """Kills a process and every descendant (zray's node and Ray's raylet run in their own
    sessions, so the process group alone is not enough)."""
    victims = []
    try:
        import psutil

        parent = psutil.Process(pid)
        victims = parent.children(recursive=True) + [parent]
    except Exception:  # noqa: BLE001
        pass
    pgids = set()
    for p in victims:
        try:
            pgids.add(os.getpgid(p.pid))
        except OSError:
            pass
        try:
            p.kill()
        except Exception:  # noqa: BLE001
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    for pgid in pgids:
        if pgid > 1 and pgid != os.getpgid(0):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass


def run_one(framework: str, workload: str, settings: dict, timeout: float, log_dir: str) -> dict:
    python = sys.executable if framework == "zray" else ray_python()
    base = {"workload": workload, "framework": framework}
    if not os.path.exists(python):
        return {
            **base,
            "status": "missing",
            "value": None,
            "error": f"{python} not found: run bash perf/setup_ray.sh",
        }
    cmd = [python, WORKLOADS_PY, "--framework", framework, "--workload", workload]
    t0 = time.monotonic()
    # cwd outside the checkout: `python -m zray...` children put their cwd first on sys.path.
    proc = subprocess.Popen(
        cmd,
        cwd=log_dir,
        env=child_env(framework, settings, timeout),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
        timed_out = True
    wall = time.monotonic() - t0
    safe = "".join(c if c.isalnum() else "_" for c in workload)
    log_path = os.path.join(log_dir, f"{framework}-{safe}.log")
    with open(log_path, "w") as f:
        f.write(f"$ {shlex.join(cmd)}\n# rc={proc.returncode} wall={wall:.1f}s\n")
        f.write("--- stdout ---\n" + (stdout or "") + "\n--- stderr ---\n" + (stderr or ""))
    result = None
    for line in reversed((stdout or "").splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
                break
            except ValueError:
                pass
    if timed_out:
        result = {
            **base,
            "status": "timeout",
            "value": None,
            "error": f"no result within {timeout:.0f} s (killed); see {log_path}",
        }
    elif result is None:
        tail = (stderr or "").strip().splitlines()[-1:] or ["(no output)"]
        result = {
            **base,
            "status": "error",
            "value": None,
            "error": f"exit code {proc.returncode}, no result: {tail[0]}",
        }
    result["wall_s"] = wall
    result["log"] = log_path
    return result


# ---------------------------------------------------------------------------------------------
# machine description


def _cmd_out(cmd, **kw) -> str:
    try:
        return subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30, **kw
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
        phys = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001
        ram, phys = "?", None
    shm = ""
    if os.path.isdir("/dev/shm"):
        import shutil

        shm = f"{shutil.disk_usage('/dev/shm').total / 2**30:.1f} GiB"
    commit = _cmd_out(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    dirty = _cmd_out(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "zray"], cwd=REPO
    )
    rp = ray_python()
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical" + (f", {phys} physical" if phys else ""),
        "ram": ram,
        "dev_shm": shm,
        "kernel": f"{platform.system()} {platform.release()}",
        "python_zray": f"{platform.python_version()} ({sys.executable})",
        "python_ray": _cmd_out(
            [rp, "-c", "import platform,sys;print(platform.python_version(),f'({sys.executable})')"]
        )
        if os.path.exists(rp)
        else "missing",
        "ray": _cmd_out([rp, "-c", "import importlib.metadata as m;print(m.version('ray'))"])
        if os.path.exists(rp)
        else "missing",
        "zray_commit": SNAPSHOT_COMMIT
        or (commit + (" + uncommitted changes in zray/" if dirty else ""))
        or "?",
    }


# ---------------------------------------------------------------------------------------------
# table


def fmt(value, unit: str | None = None) -> str:
    if value is None:
        return "?"
    if isinstance(value, int) or (unit == "processes"):
        return f"{int(round(value)):,}"
    a = abs(value)
    if a >= 100:
        return f"{value:,.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def rows_of(result: dict) -> list[tuple[str, dict]]:
    """(label, {value, unit, better}) for the main value and any extra.rows."""
    if result.get("status") != "ok":
        return []
    extra = result.get("extra") or {}
    out = [
        (
            extra.get("label", ""),
            {
                "value": result.get("value"),
                "unit": result.get("unit"),
                "better": result.get("better", "higher"),
            },
        )
    ]
    for row in extra.get("rows", []):
        out.append((row["label"], row))
    return out


def build_table(pairs: list[tuple[str, dict, dict]]) -> tuple[str, list[str]]:
    notes: list[str] = []

    def cell(result: dict) -> str:
        status = result.get("status")
        if status == "ok":
            return None
        if status == "skipped":
            return "—"
        text = {"n/a": "n/a", "error": "error", "timeout": "timeout", "missing": "missing"}.get(
            status, status
        )
        note = f"{result['framework']}: " + " ".join((result.get("error") or "").split())
        if status == "n/a" and "NotImplementedError" in note:
            note = f"{result['framework']}: not implemented yet — " + " ".join(
                (result.get("error") or "").split()
            )
        if note not in notes:
            notes.append(note)
        return f"{text} [{notes.index(note) + 1}]"

    lines = [
        "| workload | unit | zray | Ray | zray:Ray | better |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name, z, r in pairs:
        zrows, rrows = rows_of(z), rows_of(r)
        labels = [label for label, _ in (zrows or rrows)] or [""]
        zmap, rmap = dict(zrows), dict(rrows)
        zfail, rfail = cell(z), cell(r)
        for i, label in enumerate(labels):
            zr, rr = zmap.get(label), rmap.get(label)
            ref = zr or rr or {}
            unit = ref.get("unit") or z.get("unit") or r.get("unit") or ""
            better = ref.get("better") or ""
            title = (name + (f" — {label}" if label else "")) if i == 0 else f"↳ {label}"
            zs = fmt(zr["value"], unit) if zr else (zfail or "?")
            rs = fmt(rr["value"], unit) if rr else (rfail or "?")
            ratio = ""
            if zr and rr and zr["value"] is not None and rr["value"]:
                if unit == "processes":
                    ratio = f"{zr['value']:.0f}:{rr['value']:.0f}"
                elif abs(zr["value"] / rr["value"]) > 1000:
                    ratio = ">1000×"
                else:
                    ratio = f"{zr['value'] / rr['value']:.2f}×"
            lines.append(f"| {title} | {unit} | {zs} | {rs} | {ratio} | {better} |")
    return "\n".join(lines), notes


HOW_TO_READ = """\
- **zray:Ray** is zray's value divided by Ray's.  The **better** column says which direction
  wins: for throughputs (ops/s, GB/s) *higher* is better, so a ratio above 1× means zray is
  faster; for latencies (ms, s) and memory (MiB) *lower* is better, so a ratio below 1× means
  zray is faster / smaller.
- Throughput rows follow Ray's own microbenchmark (`ray microbenchmark`,
  `ray/_private/ray_perf.py`): same names, same bodies, same multipliers.  One "op" is what
  Ray counts: a get, a put, a task, an actor call; "single client tasks and get batch" counts
  batches of 1000 tasks, "single client wait 1k refs" counts rounds of 1000 tasks + 1000
  `wait` calls, "single client get object containing 10k refs" counts gets of a 10,000-ref list.
  "put gigabytes" rows count an 800 MiB array as 0.8 GB, as Ray does.
- Timing loop: Ray's `timeit` shortened — warm-up {warmup} s, then {rounds} rounds of
  {round_s} s; the value is the mean of the per-round rates (Ray: 10 s sleep, 1 s warm-up,
  4 × 2 s).  Every (workload, framework) pair runs in a fresh process and a fresh cluster.
- Both frameworks run `init(num_cpus=2)` on this 2-core machine; Ray additionally
  `include_dashboard=False` and `RAY_USAGE_STATS_ENABLED=0`.  Ray 2.60's other defaults are
  kept (token authentication on, runtime-env and dashboard agents started per node).
- **n/a** means the workload needs something the framework does not implement yet (it raised
  `NotImplementedError`).  **error** / **timeout** are failures (an exception, or no result
  within the per-run timeout); the numbered notes under the table say what happened, and the
  per-run logs (stdout, stderr, a faulthandler stack dump on a hang) are in the log directory.
- zray is measured at the commit named under *Machine*; with `--snapshot` that commit is
  exported from git (plus the checkout's compiled extensions), so edits to the working tree
  during a run do not leak into it.
- **init wall time**: `init()` alone (import excluded, shown separately), median of 3 fresh
  processes.  **get 1GB array**: `get` of a `put` 1 GiB float64 array — both frameworks return
  a zero-copy read-only view, so this measures lookup + mapping, not a copy.  **put 800MB
  array**: the first `put` right after `init()` (fresh store pages) and repeated `put`s after
  the previous object was freed.  **idle cluster memory**: driver plus every descendant
  process (`psutil` `children(recursive=True)`), 3 s after `init()`; RSS counts shared pages
  once per process (overstates), PSS splits them between sharers (the fairest total), USS is
  private pages only; `/dev/shm` growth is shared-memory store pages already allocated
  (RAM not visible in any RSS).
- Numbers are from **one run on a noisy 2-core VM**; differences under ~20 % are within
  run-to-run noise, and everything (driver, node/raylet, workers) competes for the same two
  cores.
- Not compared in this table: Ray's placement-group and Ray Client microbenchmarks (zray has
  neither). Spilling is compared below (`perf/bench_spill.py`); multi-node figures are
  zray-only (`perf/bench_cluster.py`).
"""


def render_markdown(
    table: str,
    notes: list[str],
    info: dict,
    command: str,
    total_s: float,
    settings: dict,
    quick: bool,
    remarks: list[str] = (),
) -> str:
    parts = ["# Benchmarks: zray vs Ray", ""]
    parts.append(
        "zray and Ray 2.60.0 on the same workloads: Ray's own microbenchmark "
        "(`ray microbenchmark`) plus init time, large-array get/put and idle memory. "
        "Written once against the Ray API in `perf/workloads.py`; `perf/compare.py` runs each "
        "workload in a fresh process per framework and builds this page."
    )
    parts.append("")
    parts.append(
        "> Numbers are from **one run on a noisy 2-core VM**. Treat differences under "
        "~20 % as noise." + (" **Quick (smoke) run: even noisier.**" if quick else "")
    )
    parts += [
        "",
        "## Reproduce",
        "",
        "```bash",
        REPRO,
        "```",
        "",
        "Ray is installed only in a separate virtualenv (`perf/setup_ray.sh`, "
        "`$RAY_VENV`, default `~/.zray-perf/ray-venv`); zray runs from the checkout. "
        "`--quick` shortens every measurement for a smoke run; `--only SUBSTRING` "
        "selects workloads (repeatable); `python perf/workloads.py --list` names them; "
        "one workload alone: "
        "`PYTHONPATH=. python perf/workloads.py --framework zray --workload "
        '"single client tasks sync"`.',
        "",
    ]
    parts += [
        "## Results",
        "",
        f"Command: `{command}`  ",
        f"Total runtime: {total_s / 60:.1f} min",
        "",
        table,
        "",
    ]
    if notes:
        parts += ["Notes:", ""]
        parts += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
        parts.append("")
    if remarks:
        parts += ["Remarks:", ""] + [f"- {r}" for r in remarks] + [""]
    parts += ["## Machine", ""]
    parts += [
        f"- CPU: {info['cpu']} ({info['cores']})",
        f"- RAM: {info['ram']}, /dev/shm {info['dev_shm']}",
        f"- Kernel: {info['kernel']}",
        f"- Python (zray): {info['python_zray']}",
        f"- Python (Ray): {info['python_ray']}",
        f"- Ray: {info['ray']}; zray: commit {info['zray_commit']}",
        f"- Machine load during the run: {info['load']}",
        "",
    ]
    parts += [
        "## How to read this",
        "",
        HOW_TO_READ.format(
            warmup=settings["ZRAY_PERF_WARMUP_S"],
            rounds=settings["ZRAY_PERF_ROUNDS"],
            round_s=settings["ZRAY_PERF_ROUND_S"],
        ),
    ]
    return "\n".join(parts)


def report(
    results: dict,
    names: list[str],
    info: dict,
    command: str,
    total: float,
    settings: dict,
    quick: bool,
    write: str | None,
    log_dir: str | None,
    remarks: list[str] = (),
):
    empty = {"status": "skipped", "value": None}
    pairs = [
        (
            n,
            results.get((n, "zray"), {**empty, "framework": "zray"}),
            results.get((n, "ray"), {**empty, "framework": "ray"}),
        )
        for n in names
    ]
    table, notes = build_table(pairs)
    print(table)
    if notes:
        print()
        for i, n in enumerate(notes, 1):
            print(f"{i}. {n}")
    print()
    print(
        f"Machine: {info['cpu']} ({info['cores']}), RAM {info['ram']}, {info['kernel']}, "
        f"Python {info['python_zray']}; Ray {info['ray']} (Python {info['python_ray']}); "
        f"zray {info['zray_commit']}; {info.get('load', '')}"
    )
    print(f"Command: {command}")
    print(
        f"Total runtime: {total:.0f} s ({total / 60:.1f} min)"
        + (f"; logs in {log_dir}" if log_dir else "")
    )
    if write:
        page = render_markdown(table, notes, info, command, total, settings, quick, remarks)
        kept = _kept_sections(write)  # read before "w" truncates it
        with open(write, "w") as f:
            f.write(page.rstrip("\n") + "\n\n" + kept)
        print(f"wrote {write}", file=sys.stderr)


KEEP_MARKER = "<!-- Sections below are written by hand; perf/compare.py keeps them. -->"


def _kept_sections(path: str) -> str:
    """What follows KEEP_MARKER in the page being replaced (other benchmarks' results)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        return KEEP_MARKER + "\n"
    at = old.find(KEEP_MARKER)
    return old[at:] if at >= 0 else KEEP_MARKER + "\n"


def rerender(args) -> int:
    with open(args.from_json) as f:
        dump = json.load(f)
    results, names = {}, []
    for r in dump["results"]:
        results[(r["workload"], r["framework"])] = r
        if r["workload"] not in names:
            names.append(r["workload"])
    if args.only:
        names = [n for n in names if any(o.lower() in n.lower() for o in args.only)]
    report(
        results,
        names,
        dump["machine"],
        dump["command"],
        dump["total_s"],
        dump["settings"],
        dump.get("quick", False),
        args.write,
        None,
        args.remark,
    )
    return 0


def compile_bytecode(path: str):
    """Writes zray's .pyc files, as `pip install` does for Ray's venv. A checkout (editable
    install, snapshot) has none, and where PYTHONDONTWRITEBYTECODE is set (these machines)
    every process would compile zray from source: 45 ms of each node daemon's start."""
    import compileall

    compileall.compile_dir(os.path.join(path, "zray"), quiet=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short measurements (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run workloads whose name contains NAME (repeatable)",
    )
    parser.add_argument("--write", metavar="PATH", help="write the results page (Markdown)")
    parser.add_argument("--json", metavar="PATH", help="also dump the raw results as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per (workload, framework) run (default 150, quick 60)",
    )
    parser.add_argument(
        "--frameworks",
        default="zray,ray",
        help="comma-separated, in the order they alternate (default zray,ray)",
    )
    parser.add_argument(
        "--zray-path",
        metavar="DIR",
        help="benchmark the zray package under DIR (default: this checkout)",
    )
    parser.add_argument(
        "--snapshot",
        nargs="?",
        const="HEAD",
        metavar="REV",
        help="benchmark zray as committed at REV (default HEAD), exported to a "
        "temporary directory, instead of the working tree",
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="do not run anything: re-render the table/page from a --json dump",
    )
    parser.add_argument(
        "--remark",
        action="append",
        default=[],
        metavar="TEXT",
        help="a remark to print under the table on the written page (repeatable)",
    )
    parser.add_argument(
        "--log-dir", help="where per-run stdout/stderr logs go (default: a temporary directory)"
    )
    args = parser.parse_args(argv)

    global ZRAY_PATH, SNAPSHOT_COMMIT
    if args.from_json:
        return rerender(args)
    if args.snapshot:
        ZRAY_PATH, commit = snapshot(args.snapshot)
        SNAPSHOT_COMMIT = f"{commit} (committed tree, exported to {ZRAY_PATH})"
    elif args.zray_path:
        ZRAY_PATH = os.path.abspath(args.zray_path)
        SNAPSHOT_COMMIT = f"zray from {ZRAY_PATH}"
    compile_bytecode(ZRAY_PATH)
    settings = QUICK if args.quick else FULL
    timeout = args.timeout or (60.0 if args.quick else 150.0)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    names = workload_names()
    if args.only:
        names = [n for n in names if any(o.lower() in n.lower() for o in args.only)]
        if not names:
            parser.error(f"no workload matches {args.only}")
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="zray-perf-")
    os.makedirs(log_dir, exist_ok=True)
    command = "python perf/compare.py" + (
        "".join(" " + shlex.quote(a) for a in sys.argv[1:])
        if argv is None
        else " " + shlex.join(argv)
    )
    print(f"# {len(names)} workloads x {frameworks}; logs in {log_dir}", file=sys.stderr)

    load_start = os.getloadavg()
    start = time.monotonic()
    results: dict[tuple[str, str], dict] = {}
    for name in names:
        for fw in frameworks:
            r = run_one(fw, name, settings, timeout, log_dir)
            results[(name, fw)] = r
            shown = (
                fmt(r["value"], r.get("unit")) + " " + (r.get("unit") or "")
                if r.get("status") == "ok"
                else f"{r['status']}: {r.get('error', '')[:100]}"
            )
            print(
                f"  {name:48s} {fw:5s} {shown}  ({r['wall_s']:.1f} s)", file=sys.stderr, flush=True
            )
    total = time.monotonic() - start
    load_end = os.getloadavg()

    info = machine()
    info["load"] = (
        f"1-min load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end "
        f"(15-min: {load_start[2]:.2f} / {load_end[2]:.2f})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "command": command,
                    "total_s": total,
                    "settings": settings,
                    "quick": args.quick,
                    "results": list(results.values()),
                },
                f,
                indent=1,
                default=str,
            )
    report(
        results, names, info, command, total, settings, args.quick, args.write, log_dir, args.remark
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
