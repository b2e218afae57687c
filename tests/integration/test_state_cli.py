"""`zray list | get | summary` against a CLI-started cluster (its own module: the embedded
cluster of test_state_api.py would count as leaked processes here)."""

import json
import os
import shutil

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_cli import short_tmp, stopped_on_failure, token_of, zray_cli
from tests.integration.test_lifecycle import ROOT, run_script
from tests.integration.test_task_events import wait_for
from zray._config import config
from zray.util import state


def test_cli_verbs_and_the_api_by_address():
    """`zray list|get|summary` against a CLI-started cluster, and the API from a process that
    never called init (address and token only)."""
    root = short_tmp()
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        ZRAY_SESSION_DIR_ROOT=root,
        ZRAY_TASK_EVENTS_MARK_FAILED_ON_JOB_DONE_DELAY_MS="300",
    )
    before = (zray_segments(), zray_sessions())
    with stopped_on_failure(env):
        head = zray_cli("start", "--head", "--port", "0", "--num-cpus", "1", env=env)
        assert head.returncode == 0, head.stderr
    try:
        made = run_script(
            """
            import zray as ray
            ray.init(address="auto")
            @ray.remote
            class Keeper:
                def ping(self):
                    return 1
            keeper = Keeper.options(name="keeper", lifetime="detached").remote()
            ray.get(keeper.ping.remote())
            print(keeper._actor_id.hex())
            ray.shutdown()
        """,
            env={"ZRAY_SESSION_DIR_ROOT": root},
        )
        assert made.returncode == 0, made.stderr
        actor_id = made.stdout.split()[-1]

        def cli(*args):
            return zray_cli(*args, env=env)

        listed = cli("list", "actors", "--format", "json", "--filter", "STATE=alive")
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert (row["actor_id"], row["name"], row["state"]) == (actor_id, "keeper", "ALIVE")
        assert (
            "num_restarts"
            in json.loads(cli("list", "actors", "--detail", "--format", "json").stdout)[0]
        )
        table = cli("list", "nodes")
        assert "Total: 1" in table.stdout and "ALIVE" in table.stdout
        got = cli("get", "actors", actor_id)
        assert got.stdout.startswith("---\n-   actor_id: ") and actor_id in got.stdout
        assert "is_detached: true" in got.stdout
        assert "not found in the cluster" in cli("get", "nodes", "abc").stdout
        summary = cli("summary", "actors")
        assert "Table (group by class):" in summary.stdout and "ALIVE: 1" in summary.stdout
        assert "total_objects:" in cli("summary", "objects").stdout
        jobs = json.loads(cli("list", "jobs", "--format", "json").stdout)
        assert [j["status"] for j in jobs] == ["SUCCEEDED"]
        workers = cli("list", "workers", "--format", "yaml", "--filter", "worker_type=driver")
        assert workers.stdout.startswith("---\n") and "is_alive: false" in workers.stdout
        assert cli("list", "placement-groups").stdout.strip() == "No resource in the cluster"
        bad = cli("list", "actors", "--filter", "bogus=1")
        assert bad.returncode == 2 and "Invalid filter key 'bogus'" in bad.stderr
        assert cli("list", "runtime-envs").returncode == 2

        def pinged():  # the driver's last batch went with its exit; the actor's within 1 s
            rows = json.loads(cli("list", "tasks", "--format", "json").stdout or "[]")
            ping = [r for r in rows if r["name"] == "Keeper.ping"]
            return ping if ping and ping[0]["worker_pid"] else None

        [ping] = wait_for(pinged)
        assert (ping["state"], ping["type"]) == ("FINISHED", "ACTOR_TASK")
        got = cli("get", "tasks", ping["task_id"])
        assert "func_or_class_name: Keeper.ping" in got.stdout and "events:" in got.stdout
        tasks = cli("summary", "tasks")
        assert "Table (group by func_name):" in tasks.stdout and "Keeper.__init__" in tasks.stdout
        # A job that ends with a task still running: a while later that task is FAILED.
        left = run_script(
            """
            import time
            import zray as ray
            ray.init(address="auto")
            @ray.remote
            def left_running():
                time.sleep(60)
            left_running.remote()
            time.sleep(1.5)  # it runs, and its worker reports it
        """,
            env={"ZRAY_SESSION_DIR_ROOT": root},
        )
        assert left.returncode == 0, left.stderr

        def abandoned():
            rows = json.loads(cli("list", "tasks", "--format", "json", "--detail").stdout)
            rows = [r for r in rows if r["name"] == "left_running" and r["state"] == "FAILED"]
            return rows or None

        [row] = wait_for(abandoned)
        assert row["error_type"] == "WORKER_DIED" and "as driver exits" in row["error_message"]
        timeline = cli("timeline")
        assert timeline.returncode == 0, timeline.stderr
        [path] = [w for w in timeline.stdout.split() if w.endswith(".json")]
        assert path.startswith(root) and any(
            e.get("cat") == "task::Keeper.ping" for e in json.load(open(path))
        )
        assert cli("--version").stdout.startswith("zray, version ")

        address = [line for line in head.stdout.splitlines() if line.startswith("Head address:")][
            0
        ].split()[-1]
        config.token = token_of(head.stdout)
        try:
            [actor] = state.list_actors(address=address, filters=[("name", "=", "keeper")])
            assert actor.actor_id == actor_id and actor.pid > 0
            assert len(state.list_nodes(address=address)) == 1
        finally:
            config.token = ""
    finally:
        stopped = zray_cli("stop", env=env)
        assert "Stopped 1" in stopped.stdout, stopped.stdout + stopped.stderr
        assert_no_leaks(*before)
        shutil.rmtree(root, ignore_errors=True)
