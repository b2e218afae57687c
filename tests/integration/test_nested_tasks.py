"""Nested tasks: a worker blocked in get runs its own children that no worker was leased for
(zray/_private/worker/inline_tasks.py), so deep recursions complete with a few processes, and what a
child sees (results, errors, retries, runtime context, output, cancellation) is unchanged."""

from __future__ import annotations


from zray import exceptions as X


def test_tree_of_4096_leaves_completes_on_two_cpus(ray):
    @ray.remote
    def tree_sum(lo, hi):
        if hi - lo <= 1:
            return lo
        mid = (lo + hi) // 2
        return sum(ray.get([tree_sum.remote(lo, mid), tree_sum.remote(mid, hi)]))

    assert ray.get(tree_sum.remote(0, 4096), timeout=120) == 4096 * 4095 // 2


def test_wait_runs_awaited_children_too(ray):
    @ray.remote
    def leaf(x):
        return x * 2

    @ray.remote
    def fan_out(n):
        pending, total = [leaf.remote(i) for i in range(n)], 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            total += ray.get(ready[0])
        return total

    @ray.remote
    def tree(depth):
        if depth == 0:
            return ray.get(fan_out.remote(4))
        ready, _ = ray.wait([tree.remote(depth - 1), tree.remote(depth - 1)], num_returns=2)
        return sum(ray.get(ready))

    assert ray.get(tree.remote(6), timeout=120) == 2**6 * 12


def test_child_error_and_retries_reach_the_parent(ray, tmp_path):
    marker = str(tmp_path / "attempts")

    @ray.remote(max_retries=2, retry_exceptions=True)
    def flaky():
        with open(marker, "a") as f:
            f.write("x")
        with open(marker) as f:
            if len(f.read()) < 2:
                raise ValueError("first attempt fails")
        return "second attempt"

    @ray.remote
    def broken():
        raise KeyError("lost")

    @ray.remote
    def parent():
        retried = ray.get(flaky.remote())
        try:
            ray.get(broken.remote())
        except KeyError as exc:
            return retried, isinstance(exc, X.RayTaskError), "lost" in str(exc)
        return retried, None, None

    assert ray.get(parent.remote(), timeout=60) == ("second attempt", True, True)
