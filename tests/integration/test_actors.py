"""Actors on a real embedded cluster: Ray's actor API end to end."""

import asyncio
import os
import threading
import time

import numpy as np
import pytest

from tests.conftest import exited


def test_counter(ray):
    @ray.remote
    class Counter:
        def __init__(self):
            self.value = 0

        def increment(self, val=1):
            self.value += val
            return self.value

    c = Counter.remote()
    assert ray.get(c.increment.remote()) == 1
    assert ray.get(c.increment.remote(5)) == 6


def test_calls_run_in_submission_order(ray):
    @ray.remote
    class Log:
        def __init__(self):
            self.items = []

        def add(self, i):
            self.items.append(i)
            return len(self.items)

        def items_(self):
            return self.items

    log = Log.remote()
    refs = [log.add.remote(i) for i in range(1000)]
    assert ray.get(refs, timeout=60) == list(range(1, 1001))
    assert ray.get(log.items_.remote()) == list(range(1000))


def test_constructor_args_and_refs(ray):
    @ray.remote
    class Holder:
        def __init__(self, a, b=2, *, c):
            self.data = (a, b, c)

        def get(self):
            return self.data

        def total(self, arr):
            return float(arr.sum())

    ref = ray.put(10)
    h = Holder.remote(ref, c=ray.put("x"))
    assert ray.get(h.get.remote()) == (10, 2, "x")
    big = np.ones(500_000)
    assert ray.get(h.total.remote(big)) == 500_000.0
    assert ray.get(h.total.remote(ray.put(big))) == 500_000.0


def test_large_return_is_zero_copy(ray):
    @ray.remote
    class Maker:
        def make(self, n):
            return np.arange(n)

    arr = ray.get(Maker.remote().make.remote(1_000_000))
    assert arr[-1] == 999_999 and not arr.flags.writeable


def test_method_num_returns(ray):
    @ray.remote
    class Splitter:
        @ray.method(num_returns=2)
        def split(self, x):
            return x, -x

        def pair(self):
            return 1, 2

    s = Splitter.remote()
    a, b = s.split.remote(3)
    assert ray.get([a, b]) == [3, -3]
    c, d = s.pair.options(num_returns=2).remote()
    assert ray.get([c, d]) == [1, 2]


def test_method_errors_keep_actor_alive(ray):
    @ray.remote
    class Fragile:
        def __init__(self):
            self.calls = 0

        def fail(self):
            self.calls += 1
            raise KeyError("bad key")

        def count(self):
            return self.calls

    f = Fragile.remote()
    with pytest.raises(KeyError) as info:
        ray.get(f.fail.remote())
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "Fragile.fail" in str(info.value)
    assert ray.get(f.count.remote()) == 1


def test_handles_passed_to_tasks_and_actors(ray):
    @ray.remote
    class Counter:
        def __init__(self):
            self.value = 0

        def increment(self):
            self.value += 1
            return self.value

    @ray.remote
    def bump(counter, times):
        return ray.get([counter.increment.remote() for _ in range(times)])[-1]

    @ray.remote
    class Proxy:
        def __init__(self, counter):
            self.counter = counter

        def bump(self):
            return ray.get(self.counter.increment.remote())

    c = Counter.remote()
    ray.get([bump.remote(c, 5) for _ in range(3)])
    p = Proxy.remote(c)
    assert ray.get(p.bump.remote()) == 16
    assert ray.get(c.increment.remote()) == 17


def test_named_actors(ray):
    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    a = Named.options(name="svc").remote()
    assert ray.get(ray.get_actor("svc").ping.remote()) == "pong"
    with pytest.raises(ValueError, match="already taken"):
        Named.options(name="svc").remote()
    same = Named.options(name="svc", get_if_exists=True).remote()
    assert same == a
    with pytest.raises(ValueError, match="Failed to look up actor with name 'missing'"):
        ray.get_actor("missing")
    other = Named.options(name="svc", namespace="elsewhere").remote()
    assert ray.get(ray.get_actor("svc", namespace="elsewhere").ping.remote()) == "pong"
    assert other != a
    ray.kill(a)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            ray.get_actor("svc")
        except ValueError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a killed actor's name must be released")
    ray.kill(other)


def test_kill_busy_actor(ray):
    @ray.remote
    class Busy:
        def work(self):
            time.sleep(30)

        def ping(self):
            return 1

    b = Busy.remote()
    ray.get(b.ping.remote())
    running = b.work.remote()
    queued = b.ping.remote()
    time.sleep(0.3)
    start = time.monotonic()
    ray.kill(b)
    for ref in (running, queued):
        with pytest.raises(ray.exceptions.RayActorError) as info:
            ray.get(ref, timeout=10)
        assert isinstance(info.value, ray.exceptions.ActorDiedError)
    assert time.monotonic() - start < 5
    with pytest.raises(ray.exceptions.ActorDiedError, match="killed"):
        ray.get(b.ping.remote(), timeout=10)


def test_no_call_made_after_kill_returns_reaches_the_actor(ray):
    """After kill() returns, every call through any handle in this process fails, and so
    do calls queued before it; none is answered by the dying worker."""

    @ray.remote
    class Pinger:
        def ping(self):
            return 1

    for i in range(20):
        pinger = Pinger.options(name=f"pinger-{i}").remote()
        other_handle = ray.get_actor(f"pinger-{i}")
        assert ray.get(pinger.ping.remote(), timeout=30) == 1
        queued = [pinger.ping.remote() for _ in range(3)]
        ray.kill(pinger)
        later = [pinger.ping.remote(), other_handle.ping.remote()]
        for ref in later:
            with pytest.raises(ray.exceptions.ActorDiedError, match="killed by `ray.kill`"):
                ray.get(ref, timeout=10)
        for ref in queued:
            try:
                assert ray.get(ref, timeout=10) == 1  # answered before the kill: fine
            except ray.exceptions.RayActorError:
                pass


def test_calls_after_a_restarting_kill_go_to_the_new_instance(ray):
    @ray.remote(max_restarts=-1)
    class Instance:
        def __init__(self):
            self.started = time.monotonic_ns()

        def started_at(self):
            return self.started

        def pid(self):
            return os.getpid()

    actor = Instance.remote()
    for _ in range(5):
        before = ray.get(actor.started_at.remote(), timeout=30)
        ray.kill(actor, no_restart=False)
        after = ray.get(actor.started_at.remote(), timeout=30)
        assert after != before
    ray.kill(actor)


def test_constructor_failure(ray):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot start")

        def ping(self):
            return 1

    b = Broken.remote()
    with pytest.raises(ray.exceptions.ActorDiedError) as info:
        ray.get(b.ping.remote(), timeout=10)
    assert "cannot start" in str(info.value)
    assert info.value.actor_init_failed if hasattr(info.value, "actor_init_failed") else True


def test_exit_actor(ray):
    from zray.actor import exit_actor

    @ray.remote
    class Quitter:
        def ping(self):
            return os.getpid()

        def quit(self):
            exit_actor()

    q = Quitter.remote()
    pid = ray.get(q.ping.remote())
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(q.quit.remote(), timeout=10)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(q.ping.remote(), timeout=10)
    assert exited(pid)


def test_restart_resets_state(ray):
    @ray.remote(max_restarts=2)
    class Phoenix:
        def __init__(self):
            self.value = 0

        def incr(self):
            self.value += 1
            return self.value

        def die(self):
            os._exit(1)

    p = Phoenix.remote()
    assert ray.get(p.incr.remote()) == 1
    assert ray.get(p.incr.remote()) == 2
    for _ in range(2):
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(p.die.remote(), timeout=10)
        assert ray.get(p.incr.remote(), timeout=20) == 1  # constructor ran again
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(p.die.remote(), timeout=10)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(p.incr.remote(), timeout=10)


def test_pending_calls_retried_after_restart(ray, tmp_path):
    marker = tmp_path / "crashed"

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Flaky:
        def work(self, path):
            if not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            return "done"

    f = Flaky.remote()
    assert ray.get(f.work.remote(str(marker)), timeout=30) == "done"


def _grouped_actor(ray, is_async: bool):
    """An actor with groups "pair" (2) and "solo" (1) and a default group of 1: `meet` calls
    wait for each other, `crowd` calls report how many of their group ran at once."""
    import zray

    if is_async:

        class Grouped:
            def __init__(self):
                self.events, self.inside, self.peak = {}, {}, {}

            async def meet(self, mine, other, timeout=10.0):
                self.events.setdefault(mine, asyncio.Event()).set()
                waiting = self.events.setdefault(other, asyncio.Event())
                try:
                    await asyncio.wait_for(waiting.wait(), timeout)
                    return True
                except asyncio.TimeoutError:
                    return False

            @zray.method(concurrency_group="solo")
            async def crowd(self, group):
                self.inside[group] = self.inside.get(group, 0) + 1
                self.peak[group] = max(self.peak.get(group, 0), self.inside[group])
                await asyncio.sleep(0.05)
                self.inside[group] -= 1
                return self.peak[group]

            @zray.method(concurrency_group="pair")
            async def meet_in_pair(self, mine, other):
                return await self.meet(mine, other)
    else:

        class Grouped:
            def __init__(self):
                self.lock = threading.Lock()
                self.events, self.inside, self.peak = {}, {}, {}

            def _event(self, name):
                with self.lock:
                    return self.events.setdefault(name, threading.Event())

            def meet(self, mine, other, timeout=10.0):
                self._event(mine).set()
                return self._event(other).wait(timeout)

            @zray.method(concurrency_group="solo")
            def crowd(self, group):
                with self.lock:
                    self.inside[group] = self.inside.get(group, 0) + 1
                    self.peak[group] = max(self.peak.get(group, 0), self.inside[group])
                time.sleep(0.05)
                with self.lock:
                    self.inside[group] -= 1
                    return self.peak[group]

            @zray.method(concurrency_group="pair")
            def meet_in_pair(self, mine, other):
                return self.meet(mine, other)

    # max_concurrency=1 for both: only the groups can let calls overlap.
    return ray.remote(concurrency_groups={"pair": 2, "solo": 1}, max_concurrency=1)(
        Grouped
    ).remote()


@pytest.mark.parametrize("is_async", [False, True], ids=["threaded", "async"])
def test_calls_in_a_concurrency_group_of_two_overlap(ray, is_async):
    actor = _grouped_actor(ray, is_async)
    # Each waits for the other to start: only two calls running at once both return True.
    assert ray.get(
        [actor.meet_in_pair.remote("a", "b"), actor.meet_in_pair.remote("b", "a")], timeout=30
    ) == [True, True]
    by_option = actor.meet.options(concurrency_group="pair")
    assert ray.get([by_option.remote("c", "d"), by_option.remote("d", "c")], timeout=30) == [
        True,
        True,
    ]
    ray.kill(actor)


@pytest.mark.parametrize("is_async", [False, True], ids=["threaded", "async"])
def test_a_concurrency_group_of_one_runs_its_calls_one_at_a_time(ray, is_async):
    actor = _grouped_actor(ray, is_async)
    assert max(ray.get([actor.crowd.remote("solo") for _ in range(4)], timeout=30)) == 1
    # One call of "solo" waiting for another "solo" call times out: they never overlap.
    solo = actor.meet.options(concurrency_group="solo")
    assert ray.get([solo.remote("e", "f", 0.5), solo.remote("f", "e", 0.5)], timeout=30) == [
        False,
        True,
    ]
    ray.kill(actor)


@pytest.mark.parametrize("is_async", [False, True], ids=["threaded", "async"])
def test_concurrency_groups_do_not_wait_for_each_other(ray, is_async):
    """A call blocked in one group never holds up another group's or the default group's:
    the default group (max_concurrency 1 here) runs while "solo" waits for it."""
    actor = _grouped_actor(ray, is_async)
    waiting = actor.meet.options(concurrency_group="solo").remote("g", "h")
    assert ray.get(actor.meet.remote("h", "g"), timeout=30) is True
    assert ray.get(waiting, timeout=30) is True
    ray.kill(actor)


def test_concurrency_group_errors(ray):
    @ray.remote(concurrency_groups={"io": 2})
    class Plain:
        def ping(self):
            return 1

    actor = Plain.remote()
    with pytest.raises(ValueError, match="not defined"):
        ray.get(actor.ping.options(concurrency_group="nope").remote(), timeout=30)
    assert ray.get(actor.ping.remote(), timeout=30) == 1  # the actor carries on

    @ray.remote
    class Undefined:
        @ray.method(concurrency_group="io")
        def ping(self):
            return 1

    with pytest.raises(ValueError, match="does not define"):
        Undefined.remote()

    @ray.remote(concurrency_groups={"io": 0})
    class Empty:
        def ping(self):
            return 1

    with pytest.raises(ValueError, match="positive integer"):
        Empty.remote()
    ray.kill(actor)


def test_async_actor_concurrency(ray):
    @ray.remote
    class AsyncWorker:
        async def nap(self, t):
            await asyncio.sleep(t)
            return t

    a = AsyncWorker.remote()
    ray.get(a.nap.remote(0))
    start = time.monotonic()
    assert ray.get([a.nap.remote(0.5) for _ in range(20)], timeout=30) == [0.5] * 20
    assert time.monotonic() - start < 2.5  # 20 naps of 0.5 s overlap

    @ray.remote(max_concurrency=2)
    class Limited:
        async def nap(self, t):
            await asyncio.sleep(t)
            return t

    limited = Limited.remote()
    ray.get(limited.nap.remote(0))
    start = time.monotonic()
    ray.get([limited.nap.remote(0.4) for _ in range(4)], timeout=30)
    elapsed = time.monotonic() - start
    assert 0.75 < elapsed < 2.5  # two at a time: two rounds


def test_threaded_actor(ray):
    @ray.remote(max_concurrency=4)
    class Threaded:
        def nap(self, t):
            time.sleep(t)
            return t

    t = Threaded.remote()
    ray.get(t.nap.remote(0))
    start = time.monotonic()
    ray.get([t.nap.remote(0.5) for _ in range(4)], timeout=30)
    assert time.monotonic() - start < 1.5


def test_threaded_actor_calls_that_wait_for_each_other(ray):
    @ray.remote(max_concurrency=2)
    class Rendezvous:
        def __init__(self):
            self.event = threading.Event()

        def wait(self):
            return self.event.wait(10)

        def set(self):
            self.event.set()
            return "set"

    r = Rendezvous.remote()
    waiting = r.wait.remote()
    assert ray.get([waiting, r.set.remote()], timeout=30) == [True, "set"]


def test_actor_resources_and_default_cpus(ray):
    @ray.remote
    class Idle:
        def ping(self):
            return 1

    # Default actors need 1 CPU to be placed and hold 0 while they run: more than two fit.
    actors = [Idle.remote() for _ in range(4)]
    assert ray.get([a.ping.remote() for a in actors], timeout=30) == [1] * 4

    @ray.remote(num_cpus=2)
    class Heavy:
        def ping(self):
            return 2

    h = Heavy.remote()
    assert ray.get(h.ping.remote(), timeout=30) == 2
    ray.kill(h)
    for a in actors:
        ray.kill(a)


def test_actor_out_of_scope_is_terminated(ray):
    @ray.remote
    class Temp:
        def pid(self):
            return os.getpid()

    t = Temp.remote()
    pid = ray.get(t.pid.remote())
    del t
    import gc

    gc.collect()
    assert exited(pid)


def test_calling_actor_methods_directly_is_an_error(ray):
    @ray.remote
    class A:
        def m(self):
            return 1

    with pytest.raises(TypeError, match="cannot be instantiated directly"):
        A()
    a = A.remote()
    with pytest.raises(TypeError, match="cannot be called directly"):
        a.m()
    with pytest.raises(AttributeError):
        a.nonexistent
    with pytest.raises(ValueError, match="Invalid option keyword"):
        A.options(bogus=1)


def test_runtime_context_in_actor(ray):
    @ray.remote
    class Who:
        def ids(self):
            ctx = ray.get_runtime_context()
            return (
                ctx.get_actor_id(),
                ctx.get_task_id(),
                ctx.get_actor_name(),
                ctx.was_current_actor_reconstructed,
                ctx.current_actor,
            )

    w = Who.options(name="who").remote()
    actor_id, task_id, name, restarted, me = ray.get(w.ids.remote())
    assert actor_id == w._actor_id.hex() and task_id is not None
    assert name == "who" and restarted is False and me == w
    assert ray.get_runtime_context().get_actor_id() is None
    ray.kill(w)


def test_more_actors_than_the_worker_pool_cap(ray):
    """Each actor gets a process of its own; the pool's cap is for task workers only."""
    from zray._config import config

    @ray.remote
    class Tiny:
        def pid(self):
            return os.getpid()

    count = config.worker_pool_max_extra + 8
    actors = [Tiny.remote() for _ in range(count)]
    pids = ray.get([a.pid.remote() for a in actors], timeout=120)
    assert len(set(pids)) == count
    for a in actors:
        ray.kill(a)
