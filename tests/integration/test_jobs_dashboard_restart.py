"""A dashboard that dies and starts again (the head's daemon starts it at the next request)
while jobs run: it watches their supervisors again, so each job still ends as it should
(SUCCEEDED, STOPPED, or FAILED when its supervisor dies), its log can be followed, and `stop`
works."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal

import psutil

from tests.conftest import exited
from tests.head_cluster import wait_for
from tests.integration.test_cli import zray_cli
from tests.integration.test_jobs import WAIT_S, client, cluster, wait_terminal  # noqa: F401
from zray.job_submission import JobStatus


def dashboard_pid(env: dict) -> int | None:
    root = env["ZRAY_SESSION_DIR_ROOT"]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any("zray.dashboard" in arg for arg in cmdline) and any(
            arg.startswith(root) for arg in cmdline
        ):
            return process.pid
    return None


def supervisor_pid(env: dict, submission_id: str) -> int:
    listed = zray_cli(
        "list", "actors", "--format", "json", "--detail", "--filter", "class_name=JobSupervisor",
        env=env,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    [actor] = [
        a for a in json.loads(listed.stdout)
        if a["name"] == f"_ray_internal_job_actor_{submission_id}" and a["state"] == "ALIVE"
    ]  # fmt: skip
    return actor["pid"]


def test_a_restarted_dashboard_watches_the_running_jobs_again(cluster, client, tmp_path):  # noqa: F811
    env = cluster[0]
    go = tmp_path / "go"
    script = (
        "import os, time\n"
        f"deadline = time.time() + {WAIT_S}\n"
        f"while not os.path.exists({str(go)!r}) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('after the restart', flush=True)\n"
    )
    finishing = client.submit_job(entrypoint=f"python -c {shlex.quote(script)}")
    stopped = client.submit_job(entrypoint="sleep 300")
    orphaned = client.submit_job(entrypoint="sleep 300")
    for job in (finishing, stopped, orphaned):
        wait_for(lambda: client.get_job_status(job) == JobStatus.RUNNING, WAIT_S, f"{job} RUNNING")
    old = dashboard_pid(env)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert exited(old)
    # The next request starts it again; it finds the jobs still RUNNING.
    assert client.get_job_status(finishing) == JobStatus.RUNNING, client.get_job_info(finishing)
    assert dashboard_pid(env) not in (None, old)

    async def follow():
        chunks = []
        async for chunk in client.tail_job_logs(finishing):
            chunks.append(chunk)
            if not go.exists():
                go.write_text("")
        return "".join(chunks)

    followed = asyncio.run(asyncio.wait_for(follow(), WAIT_S))
    assert "after the restart" in followed
    assert wait_terminal(client, finishing).status == JobStatus.SUCCEEDED

    assert client.stop_job(stopped) is True
    assert wait_terminal(client, stopped).status == JobStatus.STOPPED

    # A supervisor dying now is noticed by the new dashboard, as by the one that started it.
    pid = supervisor_pid(env, orphaned)
    os.kill(pid, signal.SIGKILL)
    info = wait_terminal(client, orphaned)
    assert (info.status, info.error_type) == (JobStatus.FAILED, "JOB_SUPERVISOR_ACTOR_DIED")
    assert info.message.startswith("Job supervisor actor died: ")
    assert "Job supervisor actor died" in client.get_job_logs(orphaned)
