"""CPU time of this driver and every process of its embedded cluster, split by role: the
figure the call-path benchmarks compare (bench_call_path.py, bench_task_events.py), since on a
shared machine other people's load moves a run's wall clock far more than the CPU it needs.

(`perf/bench_util.py` is the `ray.util` toolbox benchmark, hence this module's name.)
"""

from __future__ import annotations

ROLES = ("driver", "node", "owners", "workers")


def cluster_cpu_s(owner_pids=frozenset()) -> dict:
    """CPU seconds (user + system) so far, by role: this process ("driver"), the node daemon
    with the head ("node"), the processes in `owner_pids` ("owners": actors that submit work
    in multi-client runs) and every other descendant ("workers": the zygote and its workers)."""
    import psutil

    me = psutil.Process()
    spent = dict.fromkeys(ROLES, 0.0)
    for process in [me] + me.children(recursive=True):
        try:
            times = process.cpu_times()
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if process.pid == me.pid:
            role = "driver"
        elif "zray.scripts.node" in command:
            role = "node"
        elif process.pid in owner_pids:
            role = "owners"
        else:
            role = "workers"
        spent[role] += times.user + times.system
    return spent


def per_call_us(before: dict, after: dict, calls: int) -> dict:
    """Microseconds of CPU per call by role between two `cluster_cpu_s` readings."""
    return {role: 1e6 * (after[role] - before[role]) / calls for role in before}
