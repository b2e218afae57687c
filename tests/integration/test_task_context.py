"""What code running inside tasks and actors sees of its own context: ids it derives (put
objects), its job and namespace, the resources it holds, and cancellation."""

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


# ---------------------------------------------------------------------- put ids


def test_puts_in_actor_constructors_get_distinct_ids(ray):
    @ray.remote
    class Keeper:
        def __init__(self, value):
            self.ref = ray.put(value)

        def ref_(self):
            return [self.ref]  # nested: the ref itself, not its value

    small = [Keeper.remote(i) for i in range(3)]
    refs = [ray.get(k.ref_.remote(), timeout=30)[0] for k in small]
    assert len({r.binary() for r in refs}) == 3
    assert ray.get(refs, timeout=30) == [0, 1, 2]

    big = [Keeper.remote(np.full(200_000, i, dtype=np.int64)) for i in range(3)]
    refs = [ray.get(k.ref_.remote(), timeout=30)[0] for k in big]
    assert [int(a[0]) for a in ray.get(refs, timeout=30)] == [0, 1, 2]


def test_put_from_a_thread_outside_any_task_is_unique_across_workers(ray):
    @ray.remote
    def put_from_thread(value):
        out = []
        thread = threading.Thread(target=lambda: out.append(ray.put(value)))
        thread.start()
        thread.join(10)
        return [out[0]]

    refs = [ray.get(put_from_thread.remote(i), timeout=30)[0] for i in range(4)]
    assert len({r.binary() for r in refs}) == 4
    assert ray.get(refs, timeout=30) == [0, 1, 2, 3]


def test_task_id_inside_async_actor_calls_is_the_calls_own(ray):
    @ray.remote
    class Async:
        async def whoami(self, delay):
            before = ray.get_runtime_context().get_task_id()
            await asyncio.sleep(delay)
            after = ray.get_runtime_context().get_task_id()
            return before, after

    a = Async.remote()
    refs = [a.whoami.remote(0.2), a.whoami.remote(0.0), a.whoami.remote(0.1)]
    for ref, (before, after) in zip(refs, ray.get(refs, timeout=30)):
        assert before == after == ref.task_id().hex()


def test_constructor_sees_an_actor_creation_task_id(ray):
    @ray.remote
    class Ctor:
        def __init__(self):
            self.task_id = ray.get_runtime_context().get_task_id()

        def get(self):
            return self.task_id

    a = Ctor.remote()
    task_id = ray.get(a.get.remote(), timeout=30)
    actor_id = a._actor_id.hex()
    assert task_id is not None and task_id.endswith(actor_id)


# Kinds of code that put objects: a task, an actor's constructor, a method of a plain,
# threaded or async actor, and a thread a task started.
PUTTERS = st.lists(
    st.sampled_from(["task", "ctor", "method", "threaded", "async", "thread"]),
    min_size=1,
    max_size=6,
)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds=PUTTERS, per_call=st.integers(1, 3))
def test_put_ids_are_unique_across_processes_and_calls(ray, kinds, per_call):
    @ray.remote
    def task(n):
        return [ray.put(i) for i in range(n)]

    @ray.remote
    def in_thread(n):
        out = []
        thread = threading.Thread(target=lambda: out.extend(ray.put(i) for i in range(n)))
        thread.start()
        thread.join(10)
        return out

    @ray.remote
    class Plain:
        def __init__(self, n=0):
            self.made = [ray.put(i) for i in range(n)]

        def made_(self):
            return self.made

        def put(self, n):
            return [ray.put(i) for i in range(n)]

    @ray.remote
    class Async:
        async def put(self, n):
            await asyncio.sleep(0)
            return [ray.put(i) for i in range(n)]

    lists, actors = [], []  # actors outlive the gets: their puts die with them
    for kind in kinds:
        if kind == "task":
            lists.append(task.remote(per_call))
        elif kind == "thread":
            lists.append(in_thread.remote(per_call))
        elif kind == "ctor":
            actors.append(Plain.remote(per_call))
            lists.append(actors[-1].made_.remote())
        elif kind == "method":
            actor = Plain.remote()
            actors.append(actor)
            lists += [actor.put.remote(per_call), actor.put.remote(per_call)]
        elif kind == "threaded":
            actor = Plain.options(max_concurrency=3).remote()
            actors.append(actor)
            lists += [actor.put.remote(per_call) for _ in range(3)]
        else:
            actor = Async.remote()
            actors.append(actor)
            lists += [actor.put.remote(per_call) for _ in range(3)]
    refs = [r for made in ray.get(lists, timeout=60) for r in made]
    refs += [ray.put(0) for _ in range(per_call)]
    assert len({r.binary() for r in refs}) == len(refs)
    ray.get(refs, timeout=30)


# ---------------------------------------------------------------------- job and namespace


def test_named_actor_is_found_from_a_task_of_the_same_job(ray):
    @ray.remote
    class Registry:
        def hello(self):
            return "hi"

    registry = Registry.options(name="registry-13").remote()
    ray.get(registry.hello.remote(), timeout=30)

    @ray.remote
    def lookup():
        return ray.get(ray.get_actor("registry-13").hello.remote())

    @ray.remote
    class Caller:
        def lookup(self):
            return ray.get(ray.get_actor("registry-13").hello.remote())

    assert ray.get(lookup.remote(), timeout=30) == "hi"
    assert ray.get(Caller.remote().lookup.remote(), timeout=30) == "hi"


def test_tasks_see_their_jobs_id_and_namespace(ray):
    context = ray.get_runtime_context()

    @ray.remote
    def where():
        inner = ray.get_runtime_context()
        return inner.get_job_id(), inner.namespace

    @ray.remote
    class Where:
        def where(self):
            inner = ray.get_runtime_context()
            return inner.get_job_id(), inner.namespace

    expected = (context.get_job_id(), context.namespace)
    assert ray.get(where.remote(), timeout=30) == expected
    assert ray.get(Where.remote().where.remote(), timeout=30) == expected


def test_actor_created_in_a_task_is_named_in_the_jobs_namespace(ray):
    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    @ray.remote
    def create():
        actor = Named.options(name="made-in-task", lifetime="detached").remote()
        ray.get(actor.ping.remote())
        return ray.get_runtime_context().namespace

    assert ray.get(create.remote(), timeout=30) == ray.get_runtime_context().namespace
    actor = ray.get_actor("made-in-task")
    assert ray.get(actor.ping.remote(), timeout=30) == "pong"
    ray.kill(actor)


# ---------------------------------------------------------------------- cancellation


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_cancel_running_sync_actor_call_sets_is_canceled(ray):
    @ray.remote
    class Loop:
        def __init__(self):
            self.started = False

        def run(self):
            self.started = True
            deadline = time.monotonic() + 20
            while not ray.get_runtime_context().is_canceled():
                assert time.monotonic() < deadline, "never saw the cancellation"
                time.sleep(0.01)
            return "stopped"

        def started_(self):
            return self.started

    actor = Loop.options(max_concurrency=2).remote()
    ref = actor.run.remote()
    _wait_for(lambda: ray.get(actor.started_.remote(), timeout=10))
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert ray.get(actor.started_.remote(), timeout=10)  # the actor lives on


def test_cancel_queued_actor_call_never_runs(ray):
    @ray.remote
    class Slow:
        def __init__(self):
            self.ran = []

        def work(self, i, seconds):
            time.sleep(seconds)
            self.ran.append(i)
            return i

        def ran_(self):
            return self.ran

    actor = Slow.remote()
    first = actor.work.remote(0, 1.0)
    second = actor.work.remote(1, 0.0)
    third = actor.work.remote(2, 0.0)
    ray.cancel(second)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(second, timeout=30)
    assert ray.get([first, third], timeout=30) == [0, 2]
    assert ray.get(actor.ran_.remote(), timeout=10) == [0, 2]


def test_cancel_running_async_actor_call(ray):
    @ray.remote
    class Async:
        def __init__(self):
            self.cancelled = False

        async def sleep(self):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled = True
                raise

        async def saw_cancel(self):
            return self.cancelled

    actor = Async.remote()
    ref = actor.sleep.remote()
    time.sleep(0.5)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=20)
    assert ray.get(actor.saw_cancel.remote(), timeout=10)


def test_force_cancel_of_actor_call_is_an_error(ray):
    @ray.remote
    class A:
        def f(self):
            return 1

    actor = A.remote()
    ref = actor.f.remote()
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        ray.cancel(ref, force=True)
    assert ray.get(ref, timeout=10) == 1


def test_is_canceled_in_a_task_and_in_the_driver(ray):
    @ray.remote
    def check():
        return ray.get_runtime_context().is_canceled()

    assert ray.get(check.remote(), timeout=30) is False
    with pytest.raises(RuntimeError, match="only available when the process is a worker"):
        ray.get_runtime_context().is_canceled()


def test_cancel_recursive_cancels_children(ray):
    @ray.remote
    class Flags:
        def __init__(self):
            self.flags = set()

        def set(self, name):
            self.flags.add(name)

        def has(self, name):
            return name in self.flags

    @ray.remote(num_cpus=0)
    def child(flags):
        ray.get(flags.set.remote("child started"))
        try:
            time.sleep(60)
        except KeyboardInterrupt:
            ray.get(flags.set.remote("child cancelled"))
            raise

    @ray.remote(num_cpus=0)
    def parent(flags):
        return ray.get(child.remote(flags))

    flags = Flags.remote()
    ref = parent.remote(flags)
    _wait_for(lambda: ray.get(flags.has.remote("child started"), timeout=10))
    ray.cancel(ref, recursive=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    _wait_for(lambda: ray.get(flags.has.remote("child cancelled"), timeout=10))
