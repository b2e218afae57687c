"""A job with a `pip` runtime env (`zray job submit --runtime-env-json '{"pip": ...}'`), from a
wheel built by the test (no index: tests never reach PyPI), on a cluster of its own whose job
start timeout leaves room for a virtualenv to be built on a loaded machine (the supervisor
starts once its runtime env is set up, as in Ray)."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_cli import zray_cli
from tests.integration.test_jobs import job_cli, job_cluster
from zray.job_submission import JobStatus, JobSubmissionClient

# Ray's default start timeout is 900 s; a pip env here takes seconds to a minute.
START_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def cluster():
    yield from job_cluster(START_TIMEOUT_S)


def local_wheel(directory, name: str, version: str, source: str):
    """A minimal wheel of module `name` in `directory` (pip needs no index for it)."""
    import zipfile

    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": source,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in files) + (
        f"{dist_info}/RECORD,,\n"
    )
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)  # two virtualenvs built, on a machine other tests load too
def test_a_pip_runtime_env_installs_for_the_entrypoint(cluster, tmp_path):
    """`--runtime-env-json '{"pip": ...}'` from a local wheel directory (no index): the
    entrypoint's python imports the package; an install that fails makes the job FAILED with
    pip's error."""
    local_wheel(tmp_path, "zray_job_pkg", "1.2.3", "GREETING = 'hello from the wheel'\n")
    options = ["--no-index", "--find-links", str(tmp_path), "--no-cache-dir"]
    env = {"pip": {"packages": ["zray_job_pkg==1.2.3"], "pip_install_options": options}}
    script = "import sys, zray_job_pkg; print(zray_job_pkg.GREETING, sys.prefix)"
    submitted = job_cli(
        cluster, "job", "submit", "--runtime-env-json", json.dumps(env), "--",
        "python", "-c", script, timeout=140,
    )  # fmt: skip
    out = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0 and "succeeded" in submitted.stdout, out
    assert "hello from the wheel" in out and "/runtime_resources/pip/" in out, out
    env["pip"]["packages"] = ["zray_job_pkg==9.9.9"]
    failed = job_cli(
        cluster, "job", "submit", "--submission-id", "pip-fails", "--runtime-env-json",
        json.dumps(env), "--", "python", "-c", "import zray_job_pkg", timeout=140,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    _, url, token = cluster
    client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
    info = client.get_job_info("pip-fails")
    assert (info.status, info.error_type) == (JobStatus.FAILED, "RUNTIME_ENV_SETUP_FAILURE")
    assert "No matching distribution found for zray_job_pkg==9.9.9" in info.message
    assert "No matching distribution found" in client.get_job_logs("pip-fails")
    by_state_cli = zray_cli("logs", "job", "--id", "pip-fails", env=cluster[0])
    assert "No matching distribution found" in by_state_cli.stdout, by_state_cli.stderr
