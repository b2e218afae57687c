"""`max_pending_calls`: a caller with that many calls of an actor not done yet gets Ray's
PendingCallsLimitExceeded for the next one, from every handle it holds (passed ones too)."""

import pytest

from zray.exceptions import PendingCallsLimitExceeded


@pytest.fixture(scope="module")
def Gate(ray):
    @ray.remote
    class Gate:
        """Calls of `wait` block until `open` is called (an async actor runs them at once)."""

        def __init__(self):
            import asyncio

            self.opened = asyncio.Event()

        async def wait(self, value):
            await self.opened.wait()
            return value

        async def open(self):
            self.opened.set()

    return Gate


def test_the_call_past_the_limit_raises_until_calls_finish(ray, Gate):
    gate = Gate.options(max_pending_calls=2).remote()
    first, second = gate.wait.remote(1), gate.wait.remote(2)
    with pytest.raises(PendingCallsLimitExceeded, match="more than 2 tasks are queued"):
        gate.open.remote()
    unlimited = Gate.remote()  # other actors are not limited by it
    assert ray.get([unlimited.open.remote(), unlimited.wait.remote(0)], timeout=30) == [None, 0]
    ray.kill(unlimited)
    ready, _ = ray.wait([first, second], timeout=0.5)
    assert ready == []  # still pending: the refused call never reached the actor


def test_room_comes_back_as_calls_finish(ray, Gate):
    gate = Gate.options(max_pending_calls=1).remote()
    assert ray.get(gate.open.remote(), timeout=30) is None
    for value in range(3):
        assert ray.get(gate.wait.remote(value), timeout=30) == value


def test_a_passed_handle_keeps_the_limit(ray, Gate):
    gate = Gate.options(max_pending_calls=1).remote()

    @ray.remote
    def call_twice(handle):
        handle.wait.remote("first")
        try:
            handle.wait.remote("second")
        except PendingCallsLimitExceeded:
            return "refused"
        return "accepted"

    assert ray.get(call_twice.remote(gate), timeout=30) == "refused"


def test_a_bad_limit_is_refused_in_rays_words(ray, Gate):
    with pytest.raises(ValueError, match="'max_pending_calls' only accepts None, 0, -1"):
        Gate.options(max_pending_calls=-2)
