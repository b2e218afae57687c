"""allow_out_of_order_execution: whether a call whose arguments are still being computed
holds back the calls made after it, as in Ray (async and threaded actors never wait; plain
actors wait unless they allow it)."""

import pytest


@pytest.fixture(scope="module")
def parts(ray):
    @ray.remote
    def slow(seconds):
        import time

        time.sleep(seconds)
        return seconds

    @ray.remote
    class Plain:
        def echo(self, value):
            return value

    @ray.remote
    class Async:
        async def echo(self, value):
            return value

    return slow, Plain, Async


def _overtakes(ray, actor, slow) -> bool:
    """Whether a call with a ready argument finishes while an earlier call's argument is
    still being computed."""
    waiting = actor.echo.remote(slow.remote(3))
    quick = actor.echo.remote("quick")
    ready, _ = ray.wait([quick], timeout=1.5)
    overtook = bool(ready)
    assert ray.get([waiting, quick], timeout=30) == [3, "quick"]
    return overtook


def test_a_plain_actor_runs_calls_in_submission_order(ray, parts):
    slow, Plain, _ = parts
    assert not _overtakes(ray, Plain.remote(), slow)


def test_a_plain_actor_allowed_out_of_order_runs_what_is_ready(ray, parts):
    slow, Plain, _ = parts
    assert _overtakes(ray, Plain.options(allow_out_of_order_execution=True).remote(), slow)


def test_async_and_threaded_actors_run_out_of_order_by_default(ray, parts):
    slow, Plain, Async = parts
    assert _overtakes(ray, Async.remote(), slow)
    assert _overtakes(ray, Plain.options(max_concurrency=2).remote(), slow)


def test_a_passed_handle_keeps_its_actors_order(ray, parts):
    slow, Plain, _ = parts

    @ray.remote
    def overtakes_there(actor):
        import zray

        waiting = actor.echo.remote(slow.remote(3))
        quick = actor.echo.remote("quick")
        ready, _ = zray.wait([quick], timeout=1.5)
        zray.get(waiting, timeout=30)
        return bool(ready)

    allowed = Plain.options(allow_out_of_order_execution=True).remote()
    assert ray.get(overtakes_there.remote(allowed), timeout=60)


def test_in_order_is_refused_where_ray_cannot_keep_it(ray, parts):
    _, Plain, Async = parts
    with pytest.raises(ValueError, match="async actors, Ray can't execute actor tasks in order"):
        Async.options(allow_out_of_order_execution=False).remote()
    with pytest.raises(ValueError, match="multi-threaded actors"):
        Plain.options(max_concurrency=2, allow_out_of_order_execution=False).remote()
