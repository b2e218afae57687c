"""Actor methods with `retry_exceptions`: a call that raised is called again while
`max_task_retries` allows, as in Ray (whether or not the actor may restart)."""

import pytest

from tests.head_cluster import wait_for


@pytest.fixture(scope="module")
def Flaky(ray):
    @ray.remote
    class Flaky:
        """Each method raises `error` for its first `failures` calls of one key."""

        def __init__(self):
            self.calls = {}

        def fail_first(self, key, failures, error=ValueError):
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] <= failures:
                raise error(f"attempt {self.calls[key]} of {key}")
            return self.calls[key]

        @ray.method(retry_exceptions=True, max_task_retries=3)
        def decorated(self, key, failures):
            return self.fail_first(key, failures)

        def count(self, key):
            return self.calls.get(key, 0)

    return Flaky


def test_a_call_that_raised_is_retried_until_it_succeeds(ray, Flaky):
    actor = Flaky.remote()  # max_restarts=0: retries of raised exceptions need none
    ref = actor.fail_first.options(retry_exceptions=True, max_task_retries=2).remote("a", 2)
    assert ray.get(ref, timeout=30) == 3


def test_retries_stop_at_max_task_retries_with_the_last_exception(ray, Flaky):
    actor = Flaky.remote()
    ref = actor.fail_first.options(retry_exceptions=True, max_task_retries=1).remote("b", 5)
    with pytest.raises(ValueError, match="attempt 2 of b"):
        ray.get(ref, timeout=30)
    assert ray.get(actor.count.remote("b"), timeout=30) == 2


def test_without_retry_exceptions_a_raised_exception_is_final(ray, Flaky):
    actor = Flaky.options(max_restarts=1, max_task_retries=3).remote()
    with pytest.raises(ValueError, match="attempt 1 of c"):
        ray.get(actor.fail_first.remote("c", 1), timeout=30)
    assert ray.get(actor.count.remote("c"), timeout=30) == 1


def test_a_list_retries_only_the_exceptions_it_names(ray, Flaky):
    actor = Flaky.remote()
    retry_value_errors = actor.fail_first.options(retry_exceptions=[ValueError], max_task_retries=3)
    assert ray.get(retry_value_errors.remote("d", 2), timeout=30) == 3
    with pytest.raises(KeyError):
        ray.get(retry_value_errors.remote("e", 2, KeyError), timeout=30)
    assert ray.get(actor.count.remote("e"), timeout=30) == 1


def test_the_decorator_and_unlimited_retries(ray, Flaky):
    actor = Flaky.remote()
    assert ray.get(actor.decorated.remote("f", 3), timeout=30) == 4
    with pytest.raises(ValueError, match="attempt 4 of g"):
        ray.get(actor.decorated.remote("g", 10), timeout=30)
    forever = actor.fail_first.options(retry_exceptions=True, max_task_retries=-1)
    assert ray.get(forever.remote("h", 20), timeout=60) == 21


def test_calls_queued_behind_a_retried_call_run_once_each(ray, Flaky):
    actor = Flaky.remote()
    first = actor.fail_first.options(retry_exceptions=True, max_task_retries=1).remote("i", 1)
    later = [actor.fail_first.remote(f"i{n}", 0) for n in range(5)]
    assert ray.get(later, timeout=30) == [1] * 5
    assert ray.get(first, timeout=30) == 2


def test_a_bad_retry_exceptions_value_is_refused_in_rays_words(ray, Flaky):
    actor = Flaky.remote()
    with pytest.raises(AssertionError, match="retry_exceptions can either be boolean"):
        actor.fail_first.options(retry_exceptions="yes").remote("j", 0)


def test_each_attempt_is_a_task_event(ray, Flaky):
    from zray.util.state import list_tasks

    actor = Flaky.remote()
    ref = actor.fail_first.options(retry_exceptions=True, max_task_retries=2).remote("k", 2)
    assert ray.get(ref, timeout=30) == 3
    task_id = ref.task_id().hex()

    def attempts():
        rows = list_tasks(filters=[("task_id", "=", task_id)], detail=True)
        return sorted((row["attempt_number"], row["state"]) for row in rows)

    wait_for(
        lambda: attempts() == [(0, "FAILED"), (1, "FAILED"), (2, "FINISHED")],
        timeout=30,
        what="three attempts of the call, two FAILED and one FINISHED",
    )
