"""Remote functions on a real embedded cluster: submission, returns, resources, nesting."""

import time

import numpy as np
import pytest


def test_add(ray):
    @ray.remote
    def add(a, b):
        return a + b

    assert ray.get(add.remote(1, 2)) == 3
    assert ray.get([add.remote(i, i) for i in range(20)]) == [2 * i for i in range(20)]


def test_kwargs_and_defaults(ray):
    @ray.remote
    def f(a, b=10, *args, c=5, **kw):
        return a, b, args, c, kw

    assert ray.get(f.remote(1)) == (1, 10, (), 5, {})
    assert ray.get(f.remote(1, 2, 3, c=4, d=6)) == (1, 2, (3,), 4, {"d": 6})


def test_num_returns(ray):
    @ray.remote(num_returns=3)
    def three():
        return 1, 2, 3

    refs = three.remote()
    assert len(refs) == 3
    assert ray.get(refs) == [1, 2, 3]

    @ray.remote
    def pair():
        return "a", "b"

    a, b = pair.options(num_returns=2).remote()
    assert ray.get([a, b]) == ["a", "b"]


def test_num_returns_mismatch_is_an_error(ray):
    @ray.remote(num_returns=2)
    def one():
        return 1

    a, b = one.remote()
    with pytest.raises(ValueError, match="num_returns=2"):
        ray.get(a)


def test_ref_arguments_are_resolved_top_level_only(ray):
    @ray.remote
    def echo(x):
        return x

    x_ref = ray.put(list(range(5)))
    assert ray.get(echo.remote(x_ref)) == [0, 1, 2, 3, 4]
    nested = ray.get(echo.remote({"obj": x_ref}))
    assert isinstance(nested["obj"], ray.ObjectRef) and nested["obj"] == x_ref
    assert ray.get(nested["obj"]) == [0, 1, 2, 3, 4]
    listed = ray.get(echo.remote([x_ref]))
    assert listed == [x_ref]


def test_chained_task_outputs(ray):
    @ray.remote
    def inc(x):
        return x + 1

    ref = inc.remote(0)
    for _ in range(10):
        ref = inc.remote(ref)
    assert ray.get(ref) == 11


def test_large_argument_goes_through_the_store(ray):
    @ray.remote
    def total(arr):
        return float(arr.sum()), arr.flags.writeable

    arr = np.ones(1_000_000)
    assert ray.get(total.remote(arr)) == (1_000_000.0, False)


def test_large_return_is_zero_copy(ray):
    @ray.remote
    def make(n):
        return np.arange(n, dtype=np.int64)

    arr = ray.get(make.remote(2_000_000))
    assert arr[-1] == 1_999_999
    assert not arr.flags.writeable
    assert not arr.flags.owndata


def test_put_inside_task_works_in_driver(ray):
    @ray.remote
    def my_func(val):
        return ray.put(val)

    future = my_func.remote("my-test-data")
    inner = ray.get(future)
    assert isinstance(inner, ray.ObjectRef)
    assert ray.get(inner) == "my-test-data"

    @ray.remote
    def big_put():
        return ray.put(np.full(500_000, 7, dtype=np.int32))

    assert int(ray.get(ray.get(big_put.remote())).sum()) == 3_500_000


def test_nested_tasks_do_not_deadlock(ray):
    @ray.remote
    def leaf(x):
        return x * 2

    @ray.remote
    def parent(n):
        return sum(ray.get([leaf.remote(i) for i in range(n)]))

    # Four parents on two CPUs each block in get: they must give their CPU back.
    assert ray.get([parent.remote(5) for _ in range(4)], timeout=60) == [20] * 4


def test_tasks_run_in_parallel(ray):
    @ray.remote
    def sleepy(t):
        time.sleep(t)
        return True

    ray.get([sleepy.remote(0) for _ in range(2)])  # warm both workers
    start = time.monotonic()
    ray.get([sleepy.remote(1.0) for _ in range(2)])
    assert time.monotonic() - start < 1.8


def test_fractional_and_custom_resources_queue(ray):
    @ray.remote(num_cpus=0.5)
    def half():
        time.sleep(0.2)
        return 1

    assert sum(ray.get([half.remote() for _ in range(8)])) == 8


def test_infeasible_task_waits_and_warns(ray):
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("zray").addHandler(handler)

    @ray.remote(num_cpus=64)
    def huge():
        return 1

    ref = huge.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=1.0)
    with pytest.raises(TimeoutError):
        ray.get(ref, timeout=0.1)
    logging.getLogger("zray").removeHandler(handler)
    assert any("cannot be scheduled" in r.getMessage() for r in records)
    ray.cancel(ref)


def test_unknown_custom_resource_is_infeasible(ray):
    @ray.remote(resources={"nonexistent": 1})
    def f():
        return 1

    ref = f.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=5)


def test_closures_and_lambdas(ray):
    scale = 3
    f = ray.remote(lambda x: x * scale)
    assert ray.get(f.remote(2)) == 6


def test_remote_function_inside_remote_function(ray):
    @ray.remote
    def inner(x):
        return x + 100

    @ray.remote
    def outer(x):
        return ray.get(inner.remote(x))

    assert ray.get(outer.remote(1)) == 101


def test_many_async_tasks(ray):
    @ray.remote
    def ident(i):
        return i

    refs = [ident.remote(i) for i in range(1000)]
    assert ray.get(refs, timeout=60) == list(range(1000))
