"""Worker logs rotated with Ray's variables, on a cluster of its own (the node and its workers
read them from the environment they start in)."""

import os
import time

from tests.integration.test_logs import logged


def test_worker_logs_rotate_with_rays_variables_and_stay_readable(fresh, monkeypatch):
    from zray.util.state import get_log, list_logs, list_nodes

    monkeypatch.setenv("RAY_ROTATION_MAX_BYTES", "2000")  # the node and its workers read it
    monkeypatch.setenv("RAY_ROTATION_BACKUP_COUNT", "2")
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def verbose():
        for i in range(60):
            print(f"rotated line {i:03d} " + "x" * 80, flush=True)  # 100 bytes a line
        return os.getpid()

    pid = ray.get(verbose.remote(), timeout=60)
    current = logged("rotated line 059", pid=pid)  # the current file, by pid as before
    assert "rotated line 059" in current and len(current.encode()) <= 2000

    node_id = list_nodes()[0].node_id

    def rotated():
        listed = list_logs(node_id=node_id).values()
        names = [n for group in listed for n in group if f"-{pid}.out" in n]
        return sorted(names) if len(names) == 3 else None

    deadline = time.monotonic() + 30
    while not rotated():
        assert time.monotonic() < deadline, list_logs(node_id=node_id)
        time.sleep(0.1)
    names = rotated()
    assert [n.rsplit(".out", 1)[1] for n in names] == ["", ".1", ".2"]  # no .3: two backups
    older = "".join(get_log(node_id=node_id, filename=names[1]))
    assert "rotated line" in older and "rotated line 059" not in older
