"""Ray Jobs against a `zray start --head` cluster: the SDK (zray.job_submission) and the CLI
(`zray job ...`), status transitions, logs (whole and followed), stop ending the whole process
tree, working_dir upload, a failing entrypoint, the token on the HTTP API, and job records
surviving a head restart. The test process never calls init(): it is a remote client."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shlex
import shutil
import signal
import socket

import psutil
import pytest
import requests

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import short_tmp, stopped_on_failure, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT
from zray.job_submission import JobDetails, JobStatus, JobSubmissionClient, JobType
from tests.head_cluster import wait_for

WAIT_S = 60.0
# The cluster's RAY_JOB_START_TIMEOUT_SECONDS: well above a supervisor's start on a loaded
# machine (under 1 s), short enough to see a job that can never start fail.
START_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_terminal(client, submission_id: str, timeout: float = WAIT_S) -> JobDetails:
    return wait_for(
        lambda: (info := client.get_job_info(submission_id)).status.is_terminal() and info,
        timeout=timeout,
        what=f"job {submission_id} to end",
    )


def start_head(env: dict, *extra: str):
    """`zray start --head` with a dashboard on a free port; (stdout, dashboard URL)."""
    with stopped_on_failure(env):
        head = zray_cli(
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "2",
            "--dashboard-port",
            str(free_port()),
            *extra,
            env=env,
        )
        assert head.returncode == 0, head.stderr
    [line] = [line for line in head.stdout.splitlines() if "View the dashboard at" in line]
    return head.stdout, line.split()[-1].split("/?token=")[0]


def head_address(stdout: str) -> str:
    return [line for line in stdout.splitlines() if line.startswith("Head address:")][0].split()[-1]


def head_node_id(env: dict) -> str:
    nodes = json.loads(zray_cli("list", "nodes", "--format", "json", env=env).stdout)
    return next(n["node_id"] for n in nodes if n["is_head_node"])


@pytest.fixture(scope="module")
def cluster():
    yield from job_cluster(START_TIMEOUT_S)


def job_cluster(start_timeout_s: float):
    """A head and a second node; (env, dashboard URL, token)."""
    root = short_tmp()
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        ZRAY_SESSION_DIR_ROOT=root,
        ZRAY_JOB_STOP_WAIT_TIME_S="1",
        RAY_JOB_START_TIMEOUT_SECONDS=str(start_timeout_s),
    )
    env.pop("ZRAY_TOKEN", None)
    before = (zray_segments(), zray_sessions())
    stdout, url = start_head(env)
    token = token_of(stdout)
    try:
        # A second node on this machine: jobs still run on the head node.
        joined = zray_cli(
            "start", "--address", head_address(stdout), "--num-cpus", "2",
            "--resources", '{"worker_only": 1}', env=env,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        yield env, url, token
    finally:
        stopped = zray_cli("stop", env=env)
        assert "Stopped 2" in stopped.stdout, stopped.stdout + stopped.stderr
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def client(cluster):
    _, url, token = cluster
    return JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})


def job_cli(cluster, *args, timeout: float = 60):
    env, url, token = cluster
    env = dict(
        env, RAY_ADDRESS=url, RAY_JOB_HEADERS=json.dumps({"Authorization": f"Bearer {token}"})
    )
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# ---------------------------------------------------------------------------- the SDK


def test_sdk_submit_runs_a_driver_that_joins_the_cluster(cluster, client, tmp_path):
    """PENDING/RUNNING while the entrypoint runs, SUCCEEDED after; the script's init() joins
    the cluster as a driver tied to its submission (job id, driver info, metadata)."""
    go = tmp_path / "go"
    script = (
        "import os, time, zray\n"
        "zray.init()\n"
        f"deadline = time.time() + {WAIT_S}\n"
        f"while not os.path.exists({str(go)!r}) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('answer', zray.get(zray.remote(lambda: 6 * 7).remote()))\n"
        "print('job', zray.get_runtime_context().get_job_id())\n"
    )
    submission_id = client.submit_job(
        entrypoint=f"python -c {shlex.quote(script)}", metadata={"owner": "tests"}
    )
    assert submission_id.startswith("raysubmit_")
    assert client.get_job_status(submission_id) in (JobStatus.PENDING, JobStatus.RUNNING)
    wait_for(lambda: client.get_job_status(submission_id) == JobStatus.RUNNING, WAIT_S, "RUNNING")
    go.write_text("")
    info = wait_terminal(client, submission_id)
    logs = client.get_job_logs(submission_id)
    assert info.status == JobStatus.SUCCEEDED, logs
    assert info.message == "Job finished successfully."
    assert info.driver_exit_code == 0 and info.end_time >= info.start_time
    assert info.type == JobType.SUBMISSION and info.metadata == {"owner": "tests"}
    assert info.driver_node_id == head_node_id(cluster[0])
    assert f"Running entrypoint for job {submission_id}: python -c" in logs
    assert "answer 42" in logs
    job_id = logs.split("job ")[-1].split()[0]
    assert info.job_id == job_id and info.driver_info.id == job_id
    assert client.get_job_info(job_id).submission_id == submission_id  # by either id
    listed = {j.submission_id: j for j in client.list_jobs() if j.type == JobType.SUBMISSION}
    assert listed[submission_id].status == JobStatus.SUCCEEDED
    # Every driver so far came from a submission; the dashboard's own (it creates the
    # supervisors) is internal and not listed.
    assert [j for j in client.list_jobs() if j.type == JobType.DRIVER] == []


def test_sdk_working_dir_upload_and_env_vars(client, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "helper.py").write_text("VALUE = 'from the working dir'\n")
    (work / "main.py").write_text(
        "import os, zray, helper\n"
        "zray.init()\n"
        "@zray.remote\n"
        "def in_task():\n"
        "    import helper\n"
        "    return helper.VALUE, os.environ['GREETING']\n"
        "print(helper.VALUE, os.environ['GREETING'], zray.get(in_task.remote()))\n"
    )
    submission_id = client.submit_job(
        entrypoint="python main.py",
        runtime_env={"working_dir": str(work), "env_vars": {"GREETING": "hello"}},
    )
    info = wait_terminal(client, submission_id)
    logs = client.get_job_logs(submission_id)
    assert info.status == JobStatus.SUCCEEDED, logs
    assert "from the working dir hello ('from the working dir', 'hello')" in logs
    assert info.runtime_env["working_dir"].startswith("gcs://_ray_pkg_")


def test_a_job_reserving_resources_runs_where_they_are(cluster, client):
    """As in Ray, a job that reserves resources may run on any node that has them; its log
    is read from that node."""
    submission_id = client.submit_job(
        entrypoint="echo on the worker node", entrypoint_resources={"worker_only": 1}
    )
    info = wait_terminal(client, submission_id)
    assert info.status == JobStatus.SUCCEEDED
    assert info.driver_node_id != head_node_id(cluster[0])
    assert "on the worker node" in client.get_job_logs(submission_id)


def test_a_failing_entrypoint_is_failed_with_its_last_lines(client):
    submission_id = client.submit_job(
        entrypoint="python -c \"import sys; print('about to fail'); sys.exit(3)\""
    )
    info = wait_terminal(client, submission_id)
    assert info.status == JobStatus.FAILED
    assert info.error_type == "JOB_ENTRYPOINT_COMMAND_ERROR" and info.driver_exit_code == 3
    assert info.message.startswith(
        "Job entrypoint command failed with exit code 3, last available logs "
        "(truncated to 20,000 chars):\n"
    )
    assert "about to fail" in info.message


def test_a_runtime_env_that_cannot_be_set_up_fails_the_job(cluster, client):
    """A working_dir package that is not a zip: the supervisor never starts, and the job is
    FAILED with the runtime env's error rather than PENDING forever."""
    _, url, token = cluster
    headers = {"Authorization": f"Bearer {token}"}
    package = f"{url}/api/packages/gcs/_ray_pkg_notazip.zip"
    assert requests.get(package, headers=headers, timeout=30).status_code == 404
    put = requests.put(package, data=b"not a zip", headers=headers, timeout=30)
    assert put.status_code == 200
    assert requests.get(package, headers=headers, timeout=30).status_code == 200
    submission_id = client.submit_job(
        entrypoint="echo never", runtime_env={"working_dir": "gcs://_ray_pkg_notazip.zip"}
    )
    info = wait_terminal(client, submission_id)
    assert (info.status, info.error_type) == (JobStatus.FAILED, "RUNTIME_ENV_SETUP_FAILURE"), (
        info.message
    )
    assert info.message == "runtime_env setup failed: File is not a zip file"


def test_a_job_that_no_node_can_host(client):
    """It waits for resources, PENDING, as in Ray, until the start timeout fails it."""
    submission_id = client.submit_job(entrypoint="echo never", entrypoint_num_cpus=64)
    assert client.get_job_info(submission_id).message == (
        "Job has not started yet. It may be waiting for resources "
        "(CPUs, GPUs, memory, custom resources) to become available."
    )
    info = wait_terminal(client, submission_id, timeout=START_TIMEOUT_S + 30)
    assert (info.status, info.error_type) == (
        JobStatus.FAILED,
        "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
    )
    assert info.message.startswith(
        f"Job supervisor actor failed to start within {float(START_TIMEOUT_S)} seconds. "
    )
    assert "entrypoint's specified resources" in info.message


def test_stop_ends_the_whole_process_tree(client, tmp_path):
    """A child that ignores SIGTERM and a grandchild in the background: all gone after stop
    (SIGTERM, then SIGKILL after the 1 s bound the cluster was given)."""
    pids = tmp_path / "pids"
    entrypoint = (
        f"bash -c 'trap \"\" TERM; sleep 300 & echo $$ $! > {pids}; while true; do sleep 0.2; done'"
    )
    submission_id = client.submit_job(entrypoint=entrypoint)
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, WAIT_S, "pids written")
    tree = [int(p) for p in pids.read_text().split()]
    assert all(psutil.pid_exists(p) for p in tree)
    assert client.stop_job(submission_id) is True
    info = wait_terminal(client, submission_id)
    assert info.status == JobStatus.STOPPED and info.message == "Job was intentionally stopped."

    def gone():
        alive = []
        for pid in tree:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return not alive

    wait_for(gone, timeout=15, what="the job's processes to end")
    assert client.stop_job(submission_id) is False  # its supervisor is gone with it


def test_tail_job_logs_streams_until_the_job_ends(client):
    script = (
        "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.3)\n"
    )
    submission_id = client.submit_job(entrypoint=f"python -c {shlex.quote(script)}")

    async def follow():
        chunks = []
        async for chunk in client.tail_job_logs(submission_id):
            chunks.append(chunk)
        return "".join(chunks)

    text = asyncio.run(asyncio.wait_for(follow(), WAIT_S))
    assert "line 0\nline 1\nline 2\n" in text
    assert client.get_job_status(submission_id) == JobStatus.SUCCEEDED


def test_delete_only_a_finished_job_and_unknown_ids(cluster, client):
    submission_id = client.submit_job(entrypoint="sleep 30", submission_id="to-delete")
    with pytest.raises(RuntimeError, match="already exists"):
        client.submit_job(entrypoint="true", submission_id="to-delete")
    with pytest.raises(RuntimeError, match="non-terminal state"):
        client.delete_job(submission_id)
    client.stop_job(submission_id)
    wait_terminal(client, submission_id)
    assert client.delete_job(submission_id) is True
    for call in (client.get_job_info, client.delete_job, client.stop_job, client.get_job_logs):
        with pytest.raises(RuntimeError, match="status code 404: Job to-delete does not exist"):
            call(submission_id)
    # As in Ray, its log stays in its session while the session lives; it is noted to go
    # with the session instead of being kept past it (common/kept_job_logs.py).
    root = glob.escape(cluster[0]["ZRAY_SESSION_DIR_ROOT"])
    [live] = glob.glob(os.path.join(root, "session_*", "logs", "job-driver-to-delete.log"))
    session_dir = os.path.dirname(os.path.dirname(live))
    with open(os.path.join(session_dir, "deleted_job_logs")) as noted:
        assert "job-driver-to-delete.log" in noted.read().split()


def test_bad_requests_are_typed_errors(cluster, client):
    _, url, token = cluster
    with pytest.raises(TypeError, match="entrypoint_num_cpus must be a number"):
        client.submit_job(entrypoint="true", entrypoint_num_cpus="two")
    with pytest.raises(ValueError, match="entrypoint_label_selector"):
        client.submit_job(entrypoint="true", entrypoint_label_selector={"zone": "a"})
    with pytest.raises(NotImplementedError, match="no_such_field"):
        client.submit_job(entrypoint="true", runtime_env={"no_such_field": 1})
    headers = {"Authorization": f"Bearer {token}"}
    answer = requests.post(f"{url}/api/jobs/", data=b"{not json", headers=headers, timeout=30)
    assert answer.status_code == 400
    answer = requests.post(f"{url}/api/jobs/", json={"entrypoint": 5}, headers=headers, timeout=30)
    assert answer.status_code == 400 and "entrypoint must be a string" in answer.text
    with pytest.raises(
        RuntimeError, match="(?s)status code 400.*submission_id must be a file name"
    ):
        client.submit_job(entrypoint="true", submission_id="../../escape")
    body = {"entrypoint": "true", "runtime_env": {"no_such_field": 1}}
    answer = requests.post(f"{url}/api/jobs/", json=body, headers=headers, timeout=30)
    assert answer.status_code == 400 and "no_such_field" in answer.text


# ---------------------------------------------------------------------------- the token


def test_the_jobs_api_needs_the_token(cluster):
    """401 without it; Ray's ways of passing it (Authorization or X-Ray-Authorization header,
    ray-authentication-token cookie) all work."""
    from zray.exceptions import AuthenticationError

    _, url, token = cluster
    for path in ("/api/jobs/", "/api/version", "/api/packages/gcs/_ray_pkg_x.zip"):
        assert requests.get(url + path, timeout=30).status_code == 401
        wrong = requests.get(url + path, headers={"Authorization": "Bearer no"}, timeout=30)
        assert wrong.status_code == 401
    assert (
        requests.post(url + "/api/jobs/", json={"entrypoint": "true"}, timeout=30).status_code
        == 401
    )
    with pytest.raises(AuthenticationError):
        JobSubmissionClient(url)
    for kwargs in (
        {"headers": {"X-Ray-Authorization": f"Bearer {token}"}},
        {"cookies": {"ray-authentication-token": token}},
    ):
        assert isinstance(JobSubmissionClient(url, **kwargs).list_jobs(), list)


# ---------------------------------------------------------------------------- the CLI


def test_cli_submit_waits_and_prints_the_logs(cluster, tmp_path):
    work = tmp_path / "cli-work"
    work.mkdir()
    (work / "job.py").write_text(
        "import os, zray\nzray.init()\nprint('cli job ran', os.environ['FROM_YAML'])\n"
    )
    env_file = tmp_path / "env.yaml"
    env_file.write_text("env_vars:\n  FROM_YAML: 'yes'\n")
    submitted = job_cli(
        cluster,
        "job",
        "submit",
        "--runtime-env",
        str(env_file),
        "--working-dir",
        str(work),
        "--submission-id",
        "cli-job",
        "--metadata-json",
        '{"team": "x"}',
        "--",
        "python",
        "job.py",
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    out = submitted.stdout
    assert "Job 'cli-job' submitted successfully" in out
    assert "Tailing logs until the job exits (disable with --no-wait):" in out
    assert "cli job ran yes" in out and "Job 'cli-job' succeeded" in out
    status = job_cli(cluster, "job", "status", "cli-job")
    assert "Job 'cli-job' succeeded" in status.stdout, status.stdout + status.stderr
    logs = job_cli(cluster, "job", "logs", "cli-job")
    assert "cli job ran" in logs.stdout and logs.returncode == 0
    followed = job_cli(cluster, "job", "logs", "--follow", "cli-job")
    assert "cli job ran" in followed.stdout and "succeeded" in followed.stdout
    listed = job_cli(cluster, "job", "list")
    assert "submission_id='cli-job'" in listed.stdout
    # No address and no token given: the cluster of this machine, its dashboard found in the
    # head's KV, its token in the local session.
    local = zray_cli("job", "status", "cli-job", env=cluster[0])
    assert "Job 'cli-job' succeeded" in local.stdout, local.stdout + local.stderr
    # The state API's view: `zray list jobs` and `zray logs job`.
    env = cluster[0]  # the state CLI finds the cluster of this machine, as `zray list` does
    rows = json.loads(zray_cli("list", "jobs", "--format", "json", "--detail", env=env).stdout)
    [row] = [r for r in rows if r["submission_id"] == "cli-job"]
    assert (row["type"], row["status"], row["metadata"]) == (
        "SUBMISSION",
        "SUCCEEDED",
        {"team": "x"},
    )
    assert row["job_id"] and row["driver_info"]["id"] == row["job_id"]
    by_logs = zray_cli("logs", "job", "--id", "cli-job", env=env)
    assert by_logs.returncode == 0 and "cli job ran" in by_logs.stdout, by_logs.stderr
    deleted = job_cli(cluster, "job", "delete", "cli-job")
    assert "Job 'cli-job' deleted successfully" in deleted.stdout


def test_cli_failure_no_wait_stop_and_refused_flags(cluster):
    failed = job_cli(cluster, "job", "submit", "--", "python", "-c", "raise SystemExit(2)")
    assert failed.returncode == 1 and "failed" in failed.stdout
    assert "Status message: Job entrypoint command failed with exit code 2" in failed.stdout
    started = job_cli(
        cluster, "job", "submit", "--no-wait", "--submission-id", "cli-stop", "--", "sleep", "60"
    )
    assert started.returncode == 0 and "Tailing logs" not in started.stdout
    env, url, token = cluster
    client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
    wait_for(lambda: client.get_job_status("cli-stop") == JobStatus.RUNNING, WAIT_S, "RUNNING")
    stopped = job_cli(cluster, "job", "stop", "cli-stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "Attempting to stop job 'cli-stop'" in stopped.stdout
    assert "Job 'cli-stop' was stopped" in stopped.stdout
    refused = job_cli(cluster, "job", "list", "--log-style", "pretty")
    assert refused.returncode == 1 and "--log-style=pretty is not supported" in refused.stderr
    unknown = job_cli(cluster, "job", "status", "no-such-job")
    assert unknown.returncode == 1 and "Job no-such-job does not exist" in unknown.stderr


# ---------------------------------------------------------------------------- head restart


def test_job_records_survive_a_head_restart():
    """A SIGKILLed head started again on its state (same port) still knows every job; one
    that was running when it died is FAILED (its supervisor died with the head's node)."""
    from tests.conftest import exited

    root = short_tmp()
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    env.pop("ZRAY_TOKEN", None)
    where = ("--port", str(free_port()), "--head-state-path", os.path.join(root, "head.db"))
    before = (zray_segments(), zray_sessions())
    try:
        stdout, url = start_head(env, *where)
        token = token_of(stdout)
        client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
        submission_id = client.submit_job(
            entrypoint="echo kept", submission_id="kept", metadata={"k": "v"}
        )
        assert wait_terminal(client, submission_id).status == JobStatus.SUCCEEDED
        client.submit_job(entrypoint="sleep 300", submission_id="cut-short")
        wait_for(lambda: client.get_job_status("cut-short") == JobStatus.RUNNING, WAIT_S, "RUNNING")
        head_pid = int(stdout.split("(pid ")[1].split(")")[0])
        os.kill(head_pid, signal.SIGKILL)
        assert exited(head_pid)
        stdout, url = start_head(env, *where)
        client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
        info = client.get_job_info("kept")
        assert (info.status, info.metadata, info.entrypoint) == (
            JobStatus.SUCCEEDED,
            {"k": "v"},
            "echo kept",
        )
        # Its supervisor died with the head's node: the job is failed, not RUNNING forever.
        lost = client.get_job_info("cut-short")
        assert (lost.status, lost.error_type) == (
            JobStatus.FAILED,
            "JOB_SUPERVISOR_ACTOR_START_FAILURE",
        )
        assert lost.message == "Unexpected error occurred: failed to get job supervisor."
        # The log of a job the head node ran before the crash is still read (its session
        # was removed at the restart), by the REST API, the SDK and the CLI.
        headers = {"Authorization": f"Bearer {token}"}
        answer = requests.get(f"{url}/api/jobs/kept/logs", headers=headers, timeout=30)
        assert answer.status_code == 200 and "\nkept\n" in answer.json()["logs"], answer.text
        cut_short = client.get_job_logs("cut-short")
        assert "Running entrypoint for job cut-short: sleep 300" in cut_short
        assert cut_short.endswith("failed to get job supervisor.\n")  # the recovery's note
        cli_env = dict(env, RAY_ADDRESS=url, RAY_JOB_HEADERS=json.dumps(headers))
        logs = zray_cli("job", "logs", "kept", env=cli_env)
        assert "Running entrypoint for job kept: echo kept\nkept\n" in logs.stdout, logs.stderr
        by_state_cli = zray_cli("logs", "job", "--id", "kept", env=env)  # the state API's way
        assert "echo kept\nkept\n" in by_state_cli.stdout, by_state_cli.stderr
        # Deleting the job removes the copy kept from the session before the restart.
        kept = os.path.join(glob.escape(root), "job_logs", "*", "job-driver-kept.log")
        assert len(glob.glob(kept)) == 1
        assert client.delete_job("kept") is True
        assert glob.glob(kept) == []
    finally:
        zray_cli("stop", "--force", env=env)
        assert_no_leaks(*before, timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def test_state_cli_and_api_take_the_dashboard_url_jobs_users_set(cluster):
    """RAY_ADDRESS=http://host:8265 (what `ray job` wants) also serves `zray list` and the
    state API, as in Ray, whose state API talks to the dashboard: the dashboard names its
    cluster's head, asked with a token this machine holds."""
    env, url, _token = cluster
    listed = zray_cli("list", "nodes", "--format", "json", env=dict(env, RAY_ADDRESS=url))
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2
    import subprocess
    import sys

    api = subprocess.run(
        [sys.executable, "-c", f"from zray.util.state import list_nodes; print(len(list_nodes(address={url!r})))"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert api.stdout.strip() == "2", api.stderr
    refused = zray_cli(
        "list", "nodes", env=dict(env, RAY_ADDRESS=url, ZRAY_SESSION_DIR_ROOT="/nonexistent")
    )
    assert refused.returncode != 0 and "token" in refused.stderr + refused.stdout
