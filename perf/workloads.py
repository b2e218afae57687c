"""Ray microbenchmark workloads, written once against the Ray API, run under Ray or zray.

    python perf/workloads.py --framework zray --workload "single client tasks sync"
    /root/.zray-perf/ray-venv/bin/python perf/workloads.py --framework ray --workload ...
    python perf/workloads.py --list

Each invocation runs ONE workload in this (fresh) process and prints one JSON line on stdout:

    {"workload": ..., "framework": ..., "status": "ok"|"n/a"|"error", "value": ..., "unit": ...,
     "better": "higher"|"lower", "extra": {...}}

``extra.rows`` optionally holds secondary measurements of the same run (shown as sub-rows by
perf/compare.py).  A workload that needs something the framework does not implement
(NotImplementedError, e.g. actors in zray) reports status "n/a"; any other exception "error".

Definitions follow Ray's own microbenchmark (ray/_private/ray_perf.py, `ray microbenchmark`):
same names, same bodies, same multipliers.  The timing loop is Ray's `timeit`
(ray_microbenchmark_helpers.py) shortened: no 10 s pre-sleep, WARMUP s of warm-up, then ROUNDS
rounds of ROUND_S s; the value is the mean of the per-round rates (sd in extra).  Ray's is 1 s
warm-up and 4 rounds of 2 s.

Both frameworks get ``init(num_cpus=2)``; Ray additionally ``include_dashboard=False`` (and
RAY_USAGE_STATS_ENABLED=0), so neither starts a dashboard or talks to the network.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import traceback

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")

import numpy as np  # noqa: E402

ray = None  # the framework module, bound in main() (``import ray`` or ``import zray as ray``)
FRAMEWORK = None
NUM_CPUS = 2

WARMUP_S = float(os.environ.get("ZRAY_PERF_WARMUP_S", "0.5"))
ROUND_S = float(os.environ.get("ZRAY_PERF_ROUND_S", "0.8"))
ROUNDS = int(os.environ.get("ZRAY_PERF_ROUNDS", "3"))
REPEATS = int(os.environ.get("ZRAY_PERF_REPEATS", "5"))  # for the one-shot large-object timings

GiB = 1 << 30


# ---------------------------------------------------------------------------------------------
# helpers


def init(**kwargs):
    kwargs.setdefault("num_cpus", NUM_CPUS)
    if FRAMEWORK == "ray":
        kwargs.setdefault("include_dashboard", False)
    return ray.init(**kwargs)


def timeit(fn, multiplier=1):
    """Ray's timeit, shortened: warm up, then ROUNDS rounds; returns (mean, sd, per-round rates)."""
    start = time.perf_counter()
    count = 0
    while True:
        fn()
        count += 1
        if time.perf_counter() - start >= WARMUP_S:
            break
    per_call = (time.perf_counter() - start) / count
    step = max(1, int(ROUND_S / per_call / 10))  # Ray: step = calls in 1 s of warm-up // 10 + 1
    stats = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        count = 0
        while time.perf_counter() - start < ROUND_S:
            for _ in range(step):
                fn()
            count += step
        stats.append(multiplier * count / (time.perf_counter() - start))
    return statistics.fmean(stats), statistics.pstdev(stats), stats


def rate(fn, multiplier=1, unit="ops/s", **extra):
    mean, sd, stats = timeit(fn, multiplier)
    return {
        "value": mean,
        "unit": unit,
        "better": "higher",
        "extra": {"sd": sd, "rounds": stats, **extra},
    }


def with_cluster(body):
    """Runs body() between init() and shutdown()."""

    def run():
        init()
        try:
            return body()
        finally:
            ray.shutdown()

    run.__doc__ = body.__doc__
    return run


# ---------------------------------------------------------------------------------------------
# Ray's microbenchmark (ray/_private/ray_perf.py), one function per entry

WORKLOADS = {}


def workload(name):
    def register(fn):
        WORKLOADS[name] = fn
        return fn

    return register


def _small_value():
    @ray.remote
    def small_value():
        return b"ok"

    return small_value


def _actor_class():
    small_value = _small_value()

    @ray.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def small_value_arg(self, x):
            return b"ok"

        def small_value_batch(self, n):
            ray.get([small_value.remote() for _ in range(n)])

    return Actor


def _async_actor_class():
    import asyncio

    small_value = _small_value()

    @ray.remote
    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def small_value_with_arg(self, x):
            return b"ok"

        async def small_value_batch(self, n):
            await asyncio.wait([small_value.remote() for _ in range(n)])

    return AsyncActor


def _client_class():
    @ray.remote(num_cpus=0)
    class Client:
        def __init__(self, servers):
            if not isinstance(servers, list):
                servers = [servers]
            self.servers = servers

        def small_value_batch(self, n):
            results = []
            for s in self.servers:
                results.extend([s.small_value.remote() for _ in range(n)])
            ray.get(results)

        def small_value_batch_arg(self, n):
            x = ray.put(0)
            results = []
            for s in self.servers:
                results.extend([s.small_value_arg.remote(x) for _ in range(n)])
            ray.get(results)

    return Client


def _n_cpu():
    import multiprocessing

    return multiprocessing.cpu_count() // 2  # as ray_perf.py: cores of the machine, not num_cpus


@workload("single client get calls (Plasma Store)")
@with_cluster
def single_client_get_calls():
    """ray.get of one small ray.put object."""
    value = ray.put(0)
    return rate(lambda: ray.get(value))


@workload("single client put calls (Plasma Store)")
@with_cluster
def single_client_put_calls():
    """ray.put(0)."""
    return rate(lambda: ray.put(0))


@workload("multi client put calls (Plasma Store)")
@with_cluster
def multi_client_put_calls():
    """10 tasks, each doing 100 x ray.put(0); rate in puts/s."""

    @ray.remote
    def do_put_small():
        for _ in range(100):
            ray.put(0)

    return rate(lambda: ray.get([do_put_small.remote() for _ in range(10)]), 1000)


@workload("single client put gigabytes")
@with_cluster
def single_client_put_gigabytes():
    """ray.put of an 800 MiB int64 numpy array (Ray counts it as 0.8 GB); GB/s."""
    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)
    return rate(lambda: ray.put(arr), 8 * 0.1, unit="GB/s")


@workload("single client tasks and get batch")
@with_cluster
def single_client_tasks_and_get_batch():
    """Submit 1000 small tasks, get them all; rate in batches/s (Ray's multiplier is 1)."""
    small_value = _small_value()

    def small_value_batch():
        submitted = [small_value.remote() for _ in range(1000)]
        ray.get(submitted)
        return 0

    return rate(small_value_batch, unit="batches/s")


@workload("multi client put gigabytes")
@with_cluster
def multi_client_put_gigabytes():
    """10 tasks, each putting 10 x 80 MiB int64 arrays; GB/s (Ray's multiplier 10*8*0.1)."""

    @ray.remote
    def do_put():
        for _ in range(10):
            ray.put(np.zeros(10 * 1024 * 1024, dtype=np.int64))

    return rate(lambda: ray.get([do_put.remote() for _ in range(10)]), 10 * 8 * 0.1, unit="GB/s")


@workload("single client get object containing 10k refs")
@with_cluster
def single_client_get_object_containing_10k_refs():
    """ray.get of a task result that is a list of 10,000 refs put by the task."""

    @ray.remote
    def create_object_containing_ref():
        obj_refs = []
        for _ in range(10000):
            obj_refs.append(ray.put(1))
        return obj_refs

    obj_containing_ref = create_object_containing_ref.remote()
    return rate(lambda: ray.get(obj_containing_ref))


@workload("single client wait 1k refs")
@with_cluster
def single_client_wait_1k_refs():
    """Submit 1000 small tasks, then 1000 x ray.wait(not_ready) one at a time; rate in rounds/s."""
    small_value = _small_value()

    def wait_multiple_refs():
        num_objs = 1000
        not_ready = [small_value.remote() for _ in range(num_objs)]
        fetch_local = True
        for _ in range(num_objs):
            _ready, not_ready = ray.wait(not_ready, fetch_local=fetch_local)
            if fetch_local:
                fetch_local = False

    return rate(wait_multiple_refs)


@workload("single client wait 1k ready refs")
@with_cluster
def single_client_wait_1k_ready_refs():
    """ray.wait(refs, num_returns=1000) on the results of 1,000 small tasks, all finished
    (issue 20: the all-ready case); waits/s."""
    small_value = _small_value()
    refs = [small_value.remote() for _ in range(1000)]
    ray.get(refs)
    return rate(lambda: ray.wait(refs, num_returns=len(refs)))


@workload("single client tasks sync")
@with_cluster
def single_client_tasks_sync():
    """Loop of ray.get(small_value.remote()): one task in flight."""
    small_value = _small_value()
    return rate(lambda: ray.get(small_value.remote()))


@workload("single client tasks async")
@with_cluster
def single_client_tasks_async():
    """Batches of 1000 small_value.remote() (1000 in flight), then ray.get; tasks/s."""
    small_value = _small_value()
    return rate(lambda: ray.get([small_value.remote() for _ in range(1000)]), 1000)


def _task_events_off():
    """Turns task events off for every process of the cluster about to start: zray's switch,
    and Ray's (a report interval of 0 disables its task events)."""
    os.environ["ZRAY_ENABLE_TASK_EVENTS"] = "0"
    os.environ["RAY_task_events_report_interval_ms"] = "0"
    if FRAMEWORK == "zray":
        from zray._config import config

        config.enable_task_events = False  # this driver read its config at import


@workload("single client tasks sync, task events off")
def single_client_tasks_sync_events_off():
    """As "single client tasks sync", with task events off: what recording them costs."""
    _task_events_off()
    return single_client_tasks_sync()


@workload("single client tasks async, task events off")
def single_client_tasks_async_events_off():
    """As "single client tasks async", with task events off."""
    _task_events_off()
    return single_client_tasks_async()


@workload("1:1 actor calls async, task events off")
def actor_calls_async_events_off():
    """As "1:1 actor calls async", with task events off."""
    _task_events_off()
    return actor_calls_async()


ACTORS_PER_BATCH = 10


@workload("actor creation")
@with_cluster
def actor_creation():
    """Batches of 10 actors (num_cpus=0): create, call each once, kill; actors/s. zray's head
    writes each actor through to its durable tables (SQLite, on by default); Ray's, without
    Redis, keeps them in memory."""
    Actor = _actor_class()

    def batch():
        actors = [Actor.remote() for _ in range(ACTORS_PER_BATCH)]
        ray.get([a.small_value.remote() for a in actors])
        for actor in actors:
            ray.kill(actor)

    return rate(batch, ACTORS_PER_BATCH, unit="actors/s")


@workload("actor creation, head persistence off")
def actor_creation_persistence_off():
    """As "actor creation", with zray's head keeping its tables in memory only, as Ray's does
    without Redis (Ray runs the same workload unchanged): what write-through persistence costs."""
    os.environ["ZRAY_HEAD_PERSISTENCE"] = "0"
    if FRAMEWORK == "zray":
        from zray._config import config

        config.head_persistence = False  # this driver read its config at import
    return actor_creation()


@workload("multi client tasks async")
@with_cluster
def multi_client_tasks_async():
    """4 actors, each submitting 10,000 small tasks and getting them; tasks/s. Needs actors."""
    Actor = _actor_class()
    n, m = 10000, 4
    actors = [Actor.remote() for _ in range(m)]
    return rate(lambda: ray.get([a.small_value_batch.remote(n) for a in actors]), n * m)


@workload("1:1 actor calls sync")
@with_cluster
def actor_calls_sync():
    a = _actor_class().remote()
    return rate(lambda: ray.get(a.small_value.remote()))


@workload("1:1 actor calls async")
@with_cluster
def actor_calls_async():
    a = _actor_class().remote()
    return rate(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000)


@workload("1:1 actor calls concurrent")
@with_cluster
def actor_calls_concurrent():
    a = _actor_class().options(max_concurrency=16).remote()
    return rate(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000)


@workload("1:n actor calls async")
@with_cluster
def actor_calls_1_n_async():
    Actor, Client = _actor_class(), _client_class()
    n = 5000
    actors = [Actor._remote() for _ in range(_n_cpu())]
    client = Client.remote(actors)
    return rate(lambda: ray.get(client.small_value_batch.remote(n)), n * len(actors))


@workload("n:n actor calls async")
@with_cluster
def actor_calls_n_n_async():
    Actor = _actor_class()
    n, m, n_cpu = 5000, 4, _n_cpu()
    a = [Actor.remote() for _ in range(n_cpu)]

    @ray.remote
    def work(actors):
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    return rate(lambda: ray.get([work.remote(a) for _ in range(m)]), m * n)


@workload("n:n actor calls with arg async")
@with_cluster
def actor_calls_n_n_with_arg_async():
    Actor, Client = _actor_class(), _client_class()
    n = 1000
    actors = [Actor._remote() for _ in range(_n_cpu())]
    clients = [Client.remote(a) for a in actors]
    return rate(
        lambda: ray.get([c.small_value_batch_arg.remote(n) for c in clients]), n * len(clients)
    )


@workload("1:1 async-actor calls sync")
@with_cluster
def async_actor_calls_sync():
    a = _async_actor_class().remote()
    return rate(lambda: ray.get(a.small_value.remote()))


@workload("1:1 async-actor calls async")
@with_cluster
def async_actor_calls_async():
    a = _async_actor_class().remote()
    return rate(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000)


@workload("1:1 async-actor calls with args async")
@with_cluster
def async_actor_calls_with_args_async():
    a = _async_actor_class().remote()
    return rate(lambda: ray.get([a.small_value_with_arg.remote(i) for i in range(1000)]), 1000)


@workload("1:n async-actor calls async")
@with_cluster
def async_actor_calls_1_n_async():
    AsyncActor, Client = _async_actor_class(), _client_class()
    n = 5000
    actors = [AsyncActor.remote() for _ in range(_n_cpu())]
    client = Client.remote(actors)
    return rate(lambda: ray.get(client.small_value_batch.remote(n)), n * len(actors))


@workload("n:n async-actor calls async")
@with_cluster
def async_actor_calls_n_n_async():
    AsyncActor = _async_actor_class()
    n, m, n_cpu = 5000, 4, _n_cpu()
    a = [AsyncActor.remote() for _ in range(n_cpu)]

    @ray.remote
    def async_actor_work(actors):
        ray.get([actors[i % n_cpu].small_value.remote() for i in range(n)])

    return rate(lambda: ray.get([async_actor_work.remote(a) for _ in range(m)]), m * n)


# ---------------------------------------------------------------------------------------------
# extra workloads (not in Ray's microbenchmark)


def _run_self(workload_name, timeout=120):
    """Runs a workload of this file in a fresh interpreter; returns its JSON result."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--framework",
        FRAMEWORK,
        "--workload",
        workload_name,
    ]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            if result.get("status") != "ok":
                raise RuntimeError(f"{workload_name}: {result.get('error')}")
            return result
    raise RuntimeError(f"{workload_name}: no result (rc={proc.returncode}): {proc.stderr[-2000:]}")


@workload("_init once")
def init_once():
    """(internal) one fresh-process sample for 'init wall time'."""
    t0 = time.perf_counter()
    init()
    t1 = time.perf_counter()
    ray.shutdown()
    t2 = time.perf_counter()
    return {
        "value": t1 - t0,
        "unit": "s",
        "better": "lower",
        "extra": {"shutdown_s": t2 - t1, "import_s": IMPORT_S},
    }


@workload("init wall time")
def init_wall_time():
    """Seconds for init(num_cpus=2) in a fresh process (the import not included), median of 3
    fresh processes.  Ray: include_dashboard=False."""
    samples = [_run_self("_init once") for _ in range(3)]
    inits = [s["value"] for s in samples]
    imports = [s["extra"]["import_s"] for s in samples]
    shutdowns = [s["extra"]["shutdown_s"] for s in samples]
    return {
        "value": statistics.median(inits),
        "unit": "s",
        "better": "lower",
        "extra": {
            "label": "init(), median of 3 fresh processes",
            "samples": inits,
            "rows": [
                {
                    "label": "import, median",
                    "value": statistics.median(imports),
                    "unit": "s",
                    "better": "lower",
                },
                {
                    "label": "shutdown(), median",
                    "value": statistics.median(shutdowns),
                    "unit": "s",
                    "better": "lower",
                },
            ],
        },
    }


@workload("get 1GB array")
@with_cluster
def get_1gb_array():
    """ms for ray.get of a ray.put 1 GiB float64 array: first get after each of REPEATS fresh
    puts, and REPEATS repeated gets of the same object; medians.  Ray and zray both return a
    read-only zero-copy view, so this is deserialization + mapping, not a copy."""
    arr = np.ones(GiB // 8, dtype=np.float64)
    firsts, repeats = [], []
    for _ in range(REPEATS):
        ref = ray.put(arr)
        t0 = time.perf_counter()
        out = ray.get(ref)
        firsts.append(time.perf_counter() - t0)
        assert out.nbytes == GiB
        del out
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            out = ray.get(ref)
            repeats.append(time.perf_counter() - t0)
            del out
        del ref
        gc.collect()
        time.sleep(0.2)  # let the store free it
    return {
        "value": 1e3 * statistics.median(firsts),
        "unit": "ms",
        "better": "lower",
        "extra": {
            "label": f"first get after put, median of {REPEATS}",
            "first_ms": [1e3 * x for x in firsts],
            "repeated_ms": [1e3 * x for x in repeats],
            "rows": [
                {
                    "label": f"repeated get, median of {REPEATS * REPEATS}",
                    "value": 1e3 * statistics.median(repeats),
                    "unit": "ms",
                    "better": "lower",
                }
            ],
        },
    }


@workload("put 800MB array")
def put_800mb_array():
    """GB/s (1e9 B/s) for ray.put of an 800 MiB int64 array (same array as Ray's
    'single client put gigabytes', 838.9 MB): the first put right after init() of a fresh
    cluster, then REPEATS puts each after the previous object was freed (median)."""
    arr = np.arange(100 * 1024 * 1024, dtype=np.int64)
    init()
    try:
        t0 = time.perf_counter()
        ref = ray.put(arr)
        first = time.perf_counter() - t0
        repeated = []
        for _ in range(REPEATS):
            del ref
            gc.collect()
            time.sleep(0.2)  # let the store free it
            t0 = time.perf_counter()
            ref = ray.put(arr)
            repeated.append(time.perf_counter() - t0)
        del ref
    finally:
        ray.shutdown()
    gb = arr.nbytes / 1e9
    return {
        "value": gb / first,
        "unit": "GB/s",
        "better": "higher",
        "extra": {
            "label": "first put into a fresh cluster",
            "first_s": first,
            "repeated_s": repeated,
            "rows": [
                {
                    "label": f"repeated put after freeing, median of {REPEATS}",
                    "value": gb / statistics.median(repeated),
                    "unit": "GB/s",
                    "better": "higher",
                }
            ],
        },
    }


@workload("idle cluster memory")
def idle_cluster_memory():
    """Memory of an idle init(num_cpus=2)-ed driver: the driver plus every descendant process
    (psutil children(recursive=True): for Ray gcs_server, raylet, workers, agents, log monitor;
    for zray node daemon, zygote, workers), 3 s after init() returned.  Sum of RSS (shared pages
    counted once per process), sum of PSS (shared pages split between sharers) and sum of USS
    (pages private to one process), in MiB.  Also the growth of /dev/shm use (tmpfs pages of a
    shared-memory object store are RAM too, but show in no process's RSS until mapped and
    touched)."""
    import shutil

    import psutil

    shm_before = shutil.disk_usage("/dev/shm").used if os.path.isdir("/dev/shm") else None
    init()
    try:
        time.sleep(3.0)
        shm_after = shutil.disk_usage("/dev/shm").used if shm_before is not None else None
        me = psutil.Process()
        procs = [me] + me.children(recursive=True)
        per = []
        rss = pss = uss = 0
        have_full = True
        for p in procs:
            try:
                name = " ".join(p.cmdline()[:3])[:100] or p.name()
                try:
                    full = p.memory_full_info()
                    r, s, u = full.rss, getattr(full, "pss", None), full.uss
                except (psutil.AccessDenied, AttributeError):
                    have_full = False
                    r, s, u = p.memory_info().rss, None, None
            except psutil.NoSuchProcess:
                continue
            rss += r
            pss += s or 0
            uss += u or 0
            per.append(
                {
                    "pid": p.pid,
                    "cmd": name,
                    "rss_mib": r / 2**20,
                    "pss_mib": None if s is None else s / 2**20,
                    "uss_mib": None if u is None else u / 2**20,
                }
            )
    finally:
        ray.shutdown()
    rows = [
        {"label": "number of processes", "value": len(per), "unit": "processes", "better": "lower"}
    ]
    if have_full:
        rows[:0] = [
            {
                "label": "sum of PSS, driver + descendants",
                "value": pss / 2**20,
                "unit": "MiB",
                "better": "lower",
            },
            {
                "label": "sum of USS, driver + descendants",
                "value": uss / 2**20,
                "unit": "MiB",
                "better": "lower",
            },
        ]
    if shm_before is not None:
        rows.append(
            {
                "label": "/dev/shm in use (growth since before init)",
                "value": (shm_after - shm_before) / 2**20,
                "unit": "MiB",
                "better": "lower",
            }
        )
    return {
        "value": rss / 2**20,
        "unit": "MiB",
        "better": "lower",
        "extra": {"label": "sum of RSS, driver + descendants", "processes": per, "rows": rows},
    }


# ---------------------------------------------------------------------------------------------

IMPORT_S = None


def main(argv=None):
    global ray, FRAMEWORK, IMPORT_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--framework", choices=("ray", "zray"))
    parser.add_argument("--workload")
    parser.add_argument("--list", action="store_true", help="print the workload names")
    args = parser.parse_args(argv)
    if args.list:
        for name in WORKLOADS:
            if not name.startswith("_"):
                print(name)
        return 0
    if not args.framework or not args.workload:
        parser.error("--framework and --workload are required (or --list)")
    if args.workload not in WORKLOADS:
        parser.error(f"unknown workload {args.workload!r}; see --list")
    FRAMEWORK = args.framework
    dump_after = float(os.environ.get("ZRAY_PERF_DUMP_AFTER_S", "0") or 0)
    if dump_after > 0:  # a hang leaves the driver's stacks on stderr for the harness' log
        import faulthandler

        faulthandler.dump_traceback_later(dump_after, exit=False)
    t0 = time.perf_counter()
    if FRAMEWORK == "ray":
        import ray as module
    else:
        import zray as module
    IMPORT_S = time.perf_counter() - t0
    ray = module
    result = {
        "workload": args.workload,
        "framework": FRAMEWORK,
        "version": getattr(module, "__version__", None),
        "module": module.__file__,
    }
    if FRAMEWORK == "zray":
        try:
            import zray._fast as fast

            result["implementation"] = getattr(fast, "IMPLEMENTATION", None)
        except Exception:  # noqa: BLE001
            pass
    rc = 0
    try:
        out = WORKLOADS[args.workload]()
        result.update(status="ok", **out)
    except NotImplementedError as exc:
        result.update(status="n/a", value=None, error=f"NotImplementedError: {exc}")
    except Exception as exc:  # noqa: BLE001
        result.update(
            status="error",
            value=None,
            error=f"{type(exc).__name__}: {exc}",
            extra={"traceback": traceback.format_exc()},
        )
        rc = 1
    finally:
        try:
            if ray.is_initialized():
                ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps(result, default=str), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
