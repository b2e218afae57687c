"""Takes docs/images/dashboard-jobs.png: the dashboard's jobs page on a `zray start --head`
cluster of its own (under a temp session root) with a finished, a failed, a running and a
stopped submitted job, in headless Chromium (Debian's, driven by playwright, as the dashboard's
tests do).

    python perf/screenshot_jobs_page.py [--out docs/images/dashboard-jobs.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT_S = 60.0


def zray_cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "zray.scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"zray {' '.join(args)}: {done.stderr}")
    return done.stdout


def wait(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images", "dashboard-jobs.png"))
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from playwright.sync_api import sync_playwright

    from zray.job_submission import JobStatus, JobSubmissionClient

    root = tempfile.mkdtemp(prefix="zshot", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=ROOT, ZRAY_SESSION_DIR_ROOT=root)
    env.pop("ZRAY_TOKEN", None)
    try:
        out = zray_cli(env, "start", "--head", "--port", "0", "--num-cpus", "2")
        url = next(line for line in out.splitlines() if "View the dashboard at" in line).split()[-1]
        base, token = url.split("/?token=")
        client = JobSubmissionClient(base, headers={"Authorization": f"Bearer {token}"})
        jobs = [
            client.submit_job(
                entrypoint="python -c \"import zray; zray.init(); print('trained')\"",
                submission_id="train-model",
            ),
            client.submit_job(entrypoint="python -c 'raise SystemExit(3)'", submission_id="etl"),
            client.submit_job(entrypoint="sleep 30", submission_id="to-stop"),
        ]
        for job in jobs[:2]:
            wait(lambda job=job: client.get_job_status(job).is_terminal(), f"{job} to end")
        wait(lambda: client.get_job_status("to-stop") == JobStatus.RUNNING, "to-stop RUNNING")
        client.stop_job("to-stop")
        wait(lambda: client.get_job_status("to-stop").is_terminal(), "to-stop to end")
        client.submit_job(
            entrypoint='python -c "import zray, time; zray.init(); time.sleep(30)"',
            submission_id="serve-batch",
        )
        wait(lambda: client.get_job_info("serve-batch").driver_info is not None, "a driver")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            tab = browser.new_context(viewport={"width": 1400, "height": 420}).new_page()
            tab.goto(f"{url}#/jobs")
            tab.wait_for_selector("#jobs tbody tr >> nth=3")
            tab.screenshot(path=args.out, full_page=True)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        subprocess.run(
            [sys.executable, "-m", "zray.scripts.cli", "stop", "--force"],
            capture_output=True,
            timeout=120,
            env=env,
        )
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
