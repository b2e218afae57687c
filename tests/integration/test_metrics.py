"""Prometheus metrics of a live cluster: Ray's built-in names, and `zray.util.metrics`."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_lifecycle import ROOT


@pytest.fixture(scope="module")
def cluster():
    import zray
    import zray._driver_init

    before = (zray_segments(), zray_sessions())
    zray.init(num_cpus=2, _metrics_export_port=0)
    port = zray._driver_init._embedded.info["metrics_export_port"]
    yield zray, port
    zray.shutdown()
    assert_no_leaks(*before)


def scrape(port: int) -> dict:
    """{metric sample name: {frozenset(labels): value}} of one scrape."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    samples: dict = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    """The sum of `name`'s samples whose labels include `labels` (None if there is none)."""
    found = [
        v for key, v in samples.get(name, {}).items() if set(labels.items()) <= dict(key).items()
    ]
    return sum(found) if found else None


def wait_for(port: int, check, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_metrics_port_taken_is_a_clear_error():
    # First in the module: before its shared cluster starts, whose processes would count.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    before = (zray_segments(), zray_sessions())
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "zray.scripts.node",
                "--head",
                "--port",
                "0",
                "--metrics-export-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port} (--metrics-export-port)" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_leaks(*before)


def test_zray_start_serves_metrics_on_the_port_given():
    # Before the module's shared cluster starts, whose processes the leak check would count.
    import re
    import shutil

    from tests.integration.test_cli import short_tmp, zray_cli

    tmp_path = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=tmp_path)
    before = (zray_segments(), zray_sessions())
    try:
        started = zray_cli(
            "start", "--head", "--port", "0", "--num-cpus", "1", "--metrics-export-port", "0",
            env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        assert "ignoring --metrics-export-port" not in started.stderr
        url = re.search(r"Prometheus metrics: (http://\S+/metrics)", started.stdout).group(1)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert value(scrape(port), "ray_resources", Name="CPU", State="AVAILABLE") == 1.0
    finally:
        stopped = zray_cli("stop", env=env)
    assert "Stopped 1" in stopped.stdout, stopped.stdout + stopped.stderr
    assert_no_leaks(*before)
    shutil.rmtree(tmp_path)


def test_node_metrics_have_rays_names_and_labels(cluster):
    zray, port = cluster
    samples = scrape(port)
    assert value(samples, "ray_resources", Name="CPU", State="AVAILABLE") == 2.0
    assert value(samples, "ray_resources", Name="CPU", State="USED") == 0.0
    assert value(samples, "ray_node_cpu_count") == os.cpu_count()
    assert value(samples, "ray_node_mem_total") > value(samples, "ray_node_mem_used") > 0
    capacity = zray.cluster_resources()["object_store_memory"]
    assert value(samples, "ray_object_store_available_memory") <= capacity
    assert [n["MetricsExportPort"] for n in zray.nodes()] == [port]
    (labels,) = samples["ray_object_store_used_memory"]
    assert dict(labels)["NodeAddress"] == "127.0.0.1"
    assert dict(labels)["SessionName"].startswith("session_")


def test_task_counts_change_after_tasks_run(cluster):
    zray, port = cluster

    @zray.remote
    def counted_task(x):
        return x

    @zray.remote(max_retries=0)
    def failing_task():
        raise ValueError("no")

    assert value(scrape(port), "ray_tasks", Name="counted_task") is None
    assert zray.get([counted_task.remote(i) for i in range(7)], timeout=30) == list(range(7))
    with pytest.raises(ValueError):
        zray.get(failing_task.remote(), timeout=30)
    samples = wait_for(
        port,
        lambda s: (
            value(s, "ray_tasks", Name="counted_task", State="FINISHED") == 7
            and value(s, "ray_tasks", Name="failing_task", State="FAILED") == 1
        ),
    )
    assert value(samples, "ray_tasks", Name="counted_task", State="FINISHED", Source="owner") == 7
    assert value(samples, "ray_tasks", Name="failing_task", State="FAILED") == 1


def test_running_tasks_are_counted_by_their_executor(cluster):
    zray, port = cluster

    @zray.remote
    def sleeper(seconds):
        time.sleep(seconds)

    ref = sleeper.remote(8)
    samples = wait_for(
        port,
        lambda s: (
            value(s, "ray_tasks", Name="sleeper", State="RUNNING") == 1
            and value(s, "ray_tasks", Name="sleeper", State="SUBMITTED_TO_WORKER") == 1
        ),
        timeout=7,
    )
    assert value(samples, "ray_tasks", Name="sleeper", State="RUNNING", Source="executor") == 1
    assert value(samples, "ray_tasks", Name="sleeper", State="SUBMITTED_TO_WORKER") == 1
    zray.get(ref, timeout=30)


def test_running_actor_calls_are_counted_sync_and_async(cluster):
    zray, port = cluster
    import asyncio

    @zray.remote
    class SyncWaiter:
        def wait(self, seconds):
            time.sleep(seconds)

    @zray.remote
    class AsyncWaiter:
        async def wait(self, seconds):
            await asyncio.sleep(seconds)

    sync_actor, async_actor = SyncWaiter.remote(), AsyncWaiter.remote()
    refs = [sync_actor.wait.remote(8), async_actor.wait.remote(8)]
    samples = wait_for(
        port,
        lambda s: (
            value(s, "ray_tasks", Name="SyncWaiter.wait", State="RUNNING") == 1
            and value(s, "ray_tasks", Name="AsyncWaiter.wait", State="RUNNING") == 1
        ),
        timeout=7,
    )
    assert value(samples, "ray_tasks", Name="AsyncWaiter.wait", Source="executor") == 1
    zray.get(refs, timeout=30)
    # The owner's FINISHED and the executor's end of RUNNING come in two processes' reports.
    samples = wait_for(
        port,
        lambda s: (
            value(s, "ray_tasks", Name="AsyncWaiter.wait", State="FINISHED") == 1
            and value(s, "ray_tasks", Name="AsyncWaiter.wait", State="RUNNING") is None
        ),
    )
    assert value(samples, "ray_tasks", Name="SyncWaiter.wait", State="FINISHED") == 1
    assert value(samples, "ray_tasks", Name="AsyncWaiter.wait", State="RUNNING") is None
    zray.kill(sync_actor)
    zray.kill(async_actor)


def test_actors_by_state_on_the_head_node(cluster):
    zray, port = cluster

    @zray.remote
    class Metered:
        def ping(self):
            return 1

    actor = Metered.remote()
    assert zray.get(actor.ping.remote(), timeout=30) == 1
    samples = wait_for(port, lambda s: value(s, "ray_actors", Name="Metered", State="ALIVE") == 1)
    assert value(samples, "ray_actors", Name="Metered", State="ALIVE", Source="gcs") == 1
    zray.kill(actor)
    samples = wait_for(port, lambda s: value(s, "ray_actors", Name="Metered", State="DEAD") == 1)
    assert value(samples, "ray_actors", Name="Metered", State="ALIVE") in (None, 0)


def test_user_metrics_recorded_in_tasks_appear_with_their_tags(cluster):
    zray, port = cluster
    from zray.util.metrics import Counter, Gauge, Histogram

    @zray.remote
    def work(x):
        calls = Counter("obs_calls", description="calls made", tag_keys=("parity",))
        calls.inc(tags={"parity": "even" if x % 2 == 0 else "odd"})
        latency = Histogram("obs_latency", boundaries=[1.0, 5.0], tag_keys=("step",))
        latency.set_default_tags({"step": "work"}).observe(x)
        return x

    assert sum(zray.get([work.remote(i) for i in range(10)], timeout=30)) == 45
    Gauge("obs_queue_depth", tag_keys=("queue",)).set(3, tags={"queue": "main"})
    samples = wait_for(
        port,
        lambda s: (
            value(s, "ray_obs_calls_total") == 10 and value(s, "ray_obs_queue_depth") is not None
        ),
    )
    assert value(samples, "ray_obs_calls_total", parity="even") == 5
    assert value(samples, "ray_obs_calls_total", parity="odd") == 5
    assert value(samples, "ray_obs_latency_bucket", step="work", le="1.0") == 2  # 0 and 1
    assert value(samples, "ray_obs_latency_bucket", step="work", le="5.0") == 6
    assert value(samples, "ray_obs_latency_bucket", step="work", le="+Inf") == 10
    assert value(samples, "ray_obs_latency_sum", step="work") == 45
    assert value(samples, "ray_obs_queue_depth", queue="main") == 3
    help_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    assert b"# HELP ray_obs_calls_total calls made" in help_text


def test_counters_of_exited_workers_are_kept(cluster):
    zray, port = cluster
    from tests.conftest import exited
    from zray.util.metrics import Counter

    @zray.remote
    class Counting:
        def count(self):
            Counter("obs_one_shot").inc(2)
            return os.getpid()

    actors = [Counting.remote() for _ in range(3)]
    pids = zray.get([a.count.remote() for a in actors], timeout=60)
    wait_for(port, lambda s: value(s, "ray_obs_one_shot_total") == 6)
    for actor in actors:
        zray.kill(actor)
    assert all(exited(pid) for pid in pids)
    time.sleep(1.5)  # past the next publish, which would drop the dead workers' series
    assert value(scrape(port), "ray_obs_one_shot_total") == 6
