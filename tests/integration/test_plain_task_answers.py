"""A task's answer of one inline value takes the short path (plain_calls.answer_plain_task):
stored without the general decoder and dispatch, with the same results, lease bookkeeping
and task events as the general path; every other answer (errors, several returns, values in
shared memory, refs inside) still takes the general path and behaves as before."""

import numpy as np
import pytest

from zray.util import state
from tests.head_cluster import wait_for


@pytest.fixture
def counted(monkeypatch):
    """Counts the task answers the short path took."""
    from zray._private.core import channel_reading, plain_calls

    counts = {"answered": 0}

    def answer(*args):
        taken = plain_calls.answer_plain_task(*args)
        counts["answered"] += taken
        return taken

    monkeypatch.setattr(channel_reading, "answer_plain_task", answer)
    return counts


def test_sync_tasks_take_the_short_path_and_show_in_list_tasks(ray, counted):
    @ray.remote
    def plain_answer_task(x):
        return x + 1

    assert ray.get(plain_answer_task.remote(0), timeout=60) == 1  # a lease and a connection
    counted["answered"] = 0
    assert [ray.get(plain_answer_task.remote(i), timeout=60) for i in range(100)] == list(
        range(1, 101)
    )
    assert ray.get([plain_answer_task.remote(i) for i in range(100)], timeout=60) == list(
        range(1, 101)
    )
    # All but the few that had to follow a ZeroMQ message of their worker (worker_main.reply).
    assert counted["answered"] >= 180, counted

    def finished():
        rows = state.list_tasks(filters=[("name", "=", "plain_answer_task")], limit=1000)
        return len(rows) == 201 and all(r.state == "FINISHED" for r in rows)

    wait_for(finished, what="201 finished tasks in list_tasks")


def test_other_answers_take_the_general_path(ray, counted):
    @ray.remote
    def boom():
        raise ValueError("boom")

    @ray.remote(num_returns=2)
    def two():
        return 1, 2

    @ray.remote
    def big():
        return np.ones(1_000_000)

    @ray.remote
    def holds_a_ref():
        return [ray.put(5)]

    with pytest.raises(ValueError, match="boom"):
        ray.get(boom.remote(), timeout=60)
    assert ray.get(list(two.remote()), timeout=60) == [1, 2]
    assert ray.get(big.remote(), timeout=60).sum() == 1_000_000
    assert ray.get(ray.get(holds_a_ref.remote(), timeout=60)[0], timeout=60) == 5
    assert counted["answered"] == 0


def test_a_retried_task_ends_on_the_short_path(ray, counted, tmp_path):
    marker = str(tmp_path / "failed-once")

    @ray.remote(retry_exceptions=True, max_retries=2)
    def flaky(path):
        import os

        if not os.path.exists(path):
            open(path, "w").close()
            raise ValueError("first attempt fails")
        return "done"

    assert ray.get(flaky.remote(marker), timeout=60) == "done"
    assert counted["answered"] == 1  # the failed attempt's answer went the general way
