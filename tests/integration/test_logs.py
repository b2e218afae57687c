"""Workers' output in the session's log files, read through `zray.util.state.list_logs/get_log`
and `zray logs` (Ray's `ray logs`)."""

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.test_lifecycle import ROOT


def _head(zray) -> str:
    from zray._private.core import runtime

    return runtime.core.head_address.replace("tcp://", "")


def logged(text: str, timeout: float = 15.0, **which) -> str:
    """The log `which` names once it holds `text`: output reaches the file from the worker's
    forwarding thread, after the call that printed it may have returned."""
    from zray.util.state import get_log

    deadline = time.monotonic() + timeout
    while True:
        content = "".join(get_log(**which))
        if text in content or time.monotonic() > deadline:
            return content
        time.sleep(0.05)


def zray_logs(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", "logs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )


def test_list_logs_and_get_log_of_a_tasks_worker(ray):
    from zray.util.state import get_log, list_logs, list_nodes

    @ray.remote
    def chatty():
        for i in range(5):
            print(f"out line {i}")
        print("err line", file=sys.stderr)
        return os.getpid()

    pid = ray.get(chatty.remote(), timeout=30)
    out = logged("out line 4", pid=pid)
    node_id = list_nodes()[0].node_id
    logs = list_logs(node_id=node_id)
    assert logs["raylet"] == ["node.log"]
    assert any(name.endswith(f"-{pid}.out") for name in logs["worker_out"])
    assert any(name.endswith(f"-{pid}.err") for name in logs["worker_err"])
    assert list_logs(node_ip="127.0.0.1", glob_filter=f"*-{pid}.err") == {
        "worker_err": [n for n in logs["worker_err"] if n.endswith(f"-{pid}.err")]
    }
    assert [f"out line {i}" for i in range(5)] == [
        line for line in out.splitlines() if line.startswith("out line")
    ]
    assert "".join(get_log(pid=pid, tail=2)).splitlines()[-2:] == ["out line 3", "out line 4"]
    assert "err line" in logged("err line", pid=pid, suffix="err")


def test_get_log_of_an_actor(ray):

    @ray.remote
    class Talker:
        def say(self, text):
            print(text)

    actor = Talker.remote()
    ray.get(actor.say.remote("said by the actor"), timeout=30)
    assert "said by the actor" in logged("said by the actor", actor_id=actor._actor_id.hex())
    ray.kill(actor)


def test_get_log_errors_are_clear(ray):
    from zray.util.state import get_log, list_logs
    from zray.util.state.exception import RayStateApiException

    with pytest.raises(RayStateApiException, match="Expected one log file matching"):
        list(get_log(pid=999999999))
    with pytest.raises(RayStateApiException, match="no log file 'nope.log'"):
        list(get_log(filename="nope.log", node_ip="127.0.0.1"))
    with pytest.raises(RayStateApiException, match="bad log file name"):
        list(get_log(filename="../token", node_ip="127.0.0.1"))
    with pytest.raises(NotImplementedError, match="task_id"):
        get_log(task_id="ab" * 24)
    with pytest.raises(AssertionError, match="At least one of node ip and node id"):
        list_logs()
    with pytest.raises(RayStateApiException, match="no alive node with node id ffff"):
        list_logs(node_id="ffff")


@pytest.fixture
def printer(ray):
    @ray.remote
    class Printer:
        def pid(self):
            return os.getpid()

        def say(self, text, then_sleep=0.0):
            print(text, flush=True)
            time.sleep(then_sleep)

    actor = Printer.remote()
    yield actor, ray.get(actor.pid.remote(), timeout=30)
    ray.kill(actor)


def test_follow_streams_appended_lines(ray, printer):
    from zray.util.state import get_log

    actor, pid = printer
    ray.get(actor.say.remote("before following"), timeout=30)
    seen: list = []
    done = threading.Event()

    def follow():
        for chunk in get_log(pid=pid, follow=True, _interval=0.1):
            seen.append(chunk)
            if "after" in "".join(seen):
                done.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)
    ray.get(actor.say.remote("after"), timeout=30)
    assert done.wait(20), seen
    text = "".join(seen)
    assert text.index("before following") < text.index("after")


def test_zray_logs_cli_lists_prints_and_follows(ray, printer):
    head = _head(ray)
    actor, pid = printer
    ray.get(actor.say.remote("cli can see this"), timeout=30)
    assert "cli can see this" in logged("cli can see this", pid=pid)
    listed = zray_logs("--address", head)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("Node IP: 127.0.0.1\n---\n")
    assert "raylet:\n    -   node.log\n" in listed.stdout
    printed = zray_logs("worker", "--pid", str(pid), "--address", head, "--tail", "-1")
    assert printed.returncode == 0, printed.stderr
    assert "cli can see this" in printed.stdout
    single = zray_logs(f"*-{pid}.out", "--address", head)
    assert "--- Log has been truncated to last 1000 lines." in single.stdout
    assert "cli can see this" in single.stdout
    by_actor = zray_logs("actor", "--id", actor._actor_id.hex(), "--address", head)
    assert "cli can see this" in by_actor.stdout, by_actor.stderr
    refused = zray_logs("task", "--id", "00", "--address", head)
    assert refused.returncode == 2 and "zray logs task is not supported" in refused.stderr

    follower = subprocess.Popen(
        [sys.executable, "-m", "zray.scripts.cli", "logs", "worker", "--pid", str(pid)]
        + ["--address", head, "--follow", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    lines: list = []
    appended = threading.Event()

    def read():
        for line in follower.stdout:
            lines.append(line)
            if "appended later" in line:
                appended.set()
                return

    try:
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 30
        while not any("cli can see this" in l for l in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        ray.get(actor.say.remote("appended later"), timeout=30)
        assert appended.wait(20), lines
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        follower.stdout.close()
        follower.stderr.close()
