"""This machine's memory and CPU use, which each node reports in `NodeStats` (the dashboard's
node table shows them). psutil is imported at the first question: it costs the daemon's start
8 ms that a node nobody asks about need not pay."""

from __future__ import annotations

_cpu_primed = [False]


def host_use() -> dict:
    import psutil

    memory = psutil.virtual_memory()
    # Use since the previous call: the first call has nothing to compare with (None).
    cpu = psutil.cpu_percent(interval=None)
    cpu, _cpu_primed[0] = (cpu if _cpu_primed[0] else None), True
    return {"total": memory.total, "used": memory.total - memory.available, "cpu_percent": cpu}
