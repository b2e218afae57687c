"""The head's bounded task history, seen through the state API (its own cluster: the head reads
its bound from the environment it starts in), and timeline() without a cluster."""

import warnings

import pytest

from tests.integration.test_lifecycle import run_script
from tests.integration.test_task_events import wait_for
from zray.util import state
from zray.util.state.exception import RayStateApiException


def test_evicted_attempts_truncate_answers_as_ray_says(fresh, monkeypatch):
    monkeypatch.setenv("ZRAY_TASK_EVENTS_MAX_NUM_TASK_IN_GCS", "5")
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def bounded(i):
        return i

    refs = [bounded.remote(i) for i in range(8)]
    ray.get(refs)

    def kept():
        rows = state.list_tasks(raise_on_missing_output=False)
        return rows if all(r.state == "FINISHED" for r in rows) and len(rows) == 5 else None

    rows = wait_for(kept)
    # The latest five, the first three evicted.
    assert {r.task_id for r in rows} == {r.task_id().hex() for r in refs[3:]}
    with pytest.raises(RayStateApiException, match="Failed to retrieve all 8 tasks"):
        state.list_tasks()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state.list_tasks(raise_on_missing_output=False, _explain=True)
    assert any("5 (8 total from the cluster) tasks" in str(w.message) for w in caught)


def test_timeline_before_init_is_refused():
    result = run_script(
        """
        import zray
        try:
            zray.timeline()
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert "Timeline requires Ray to be initialized first." in result.stdout, result.stderr
