"""zray.experimental.tqdm_ray: a task's progress bar is drawn by the driver, its state lines are
never printed as output."""

import re

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.integration.test_lifecycle import run_script


def test_task_progress_is_drawn_once_on_the_driver():
    before = (zray_segments(), zray_sessions())
    result = run_script(
        """
        import os, time
        import zray as ray
        from zray.experimental.tqdm_ray import tqdm

        ray.init(num_cpus=2)

        @ray.remote
        def crunch(n):
            for _ in tqdm(range(n), desc="crunching", flush_interval_s=0):
                time.sleep(0.005)
            print("crunched", n)
            return os.getpid()

        pids = ray.get([crunch.remote(40), crunch.remote(25)], timeout=60)
        # One write: the lines forwarded from workers share this stream, and print() of
        # several values writes each apart (one landed between them once).
        print(f"PIDS {pids[0]} {pids[1]}")
        time.sleep(1)  # output travels apart from results: let the last lines arrive
        ray.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "__ray_tqdm_magic_token__" not in output
    pids = re.search(r"PIDS (\d+) (\d+)", result.stdout).groups()
    assert sorted(re.findall(r"\) crunched (\d+)", result.stdout)) == ["25", "40"]
    # Each task's bar, with its worker's pid, reached its total on the driver's terminal.
    assert re.search(rf"\(pid={pids[0]}\) .*crunching: 100%.*40\.0/40\.0", result.stderr)
    assert re.search(rf"\(pid={pids[1]}\) .*crunching: 100%.*25\.0/25\.0", result.stderr)
    assert_no_leaks(*before)


def test_bar_in_the_driver_and_print_between_bars():
    result = run_script(
        """
        from zray.experimental import tqdm_ray

        bar = tqdm_ray.tqdm(total=3, desc="local", flush_interval_s=0)
        bar.update(2)
        print("in between")
        bar.update(1)
        bar.close()
        assert tqdm_ray.instance().num_hides >= 1  # print cleared the bars first
        """
    )
    assert result.returncode == 0, result.stderr
    assert "in between" in result.stdout
    assert re.search(r"local: 100%.*\b3\.00/3\.00", result.stderr)
    assert "(pid=" not in result.stderr  # the driver's own bar has no prefix
