"""zray._fast allocator: both implementations, and that they decide identically."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import zray._fast as fast
from zray._config import config


def _load(impl):
    compiled, pure = fast.implementations()["allocator"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(
            f"zray._fast.allocator is not built: {fast.FAST_IMPORT_ERRORS.get('allocator')}"
        )
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def Allocator(request):
    return _load(request.param).Allocator


@pytest.fixture(scope="module")
def both_allocators():
    """(compiled, pure) Allocator classes; resolved outside @given so a missing build fails
    cleanly instead of inside hypothesis."""
    return _load("cython").Allocator, _load("python").Allocator


def _rounded(size, alignment):
    return max(alignment, -(-size // alignment) * alignment)


def test_basic_allocate_free(Allocator):
    a = Allocator(1024)
    assert (a.capacity, a.alignment, a.used, a.free_bytes) == (1024, 64, 0, 1024)
    assert a.allocate(1) == 0
    assert a.allocate(0) == 64  # size 0 still takes one aligned unit
    assert a.allocate(65) == 128
    assert a.size_of(128) == 128
    assert a.used == 256 and a.num_allocations == 3 and a.high_water == 256
    assert a.free(64) == 64
    assert a.free_blocks() == [(64, 64), (256, 768)]
    assert a.allocations() == [(0, 64), (128, 128)]
    assert a.largest_free == 768


def test_best_fit_prefers_smallest_then_lowest(Allocator):
    a = Allocator(64 * 20, alignment=64)
    offs = [a.allocate(64) for _ in range(20)]
    # Holes: 2 units at 0, 1 unit at 5, 3 units at 9, 1 unit at 15.
    for i in (0, 1, 5, 9, 10, 11, 15):
        a.free(offs[i])
    assert a.allocate(64) == 5 * 64  # smallest hole, lowest of the two 1-unit holes
    assert a.allocate(64) == 15 * 64  # the other 1-unit hole
    assert a.allocate(100) == 0  # 2 units: the 2-unit hole beats the 3-unit one
    assert a.allocate(3 * 64) == 9 * 64
    assert a.allocate(1) == -1
    assert a.free_bytes == 0 and a.largest_free == 0


def test_coalescing_restores_one_block(Allocator):
    a = Allocator(4096)
    offs = [a.allocate(100) for _ in range(8)]
    for off in offs[::2] + offs[1::2]:
        a.free(off)
    assert a.free_blocks() == [(0, 4096)]
    assert a.used == 0 and a.high_water == 8 * 128


def test_errors(Allocator):
    a = Allocator(1024)
    with pytest.raises(ValueError):
        a.allocate(-1)
    with pytest.raises(TypeError):
        a.allocate(1.5)
    assert a.allocate(1025) == -1
    assert a.allocate(2**80) == -1
    off = a.allocate(10)
    a.free(off)
    with pytest.raises(KeyError):
        a.free(off)  # double free
    with pytest.raises(KeyError):
        a.free(2**80)
    with pytest.raises(KeyError):
        a.size_of(off)
    x = a.allocate(128)
    with pytest.raises(KeyError):
        a.free(x + 64)  # inside an allocation, not its start
    assert a.allocations() == [(x, 128)]
    for bad in (dict(capacity=-1), dict(capacity=10, alignment=0), dict(capacity=10, alignment=48)):
        with pytest.raises(ValueError):
            Allocator(**bad)


def test_unaligned_capacity_tail(Allocator):
    a = Allocator(200, alignment=64)
    assert [a.allocate(64) for _ in range(3)] == [0, 64, 128]
    assert a.free_blocks() == [(192, 8)]
    assert a.allocate(1) == -1  # rounds to 64, the 8-byte tail cannot hold it
    a.free(64)
    assert a.free_blocks() == [(64, 64), (192, 8)]
    assert a.used + a.free_bytes == 200


def test_zero_capacity(Allocator):
    a = Allocator(0)
    assert a.allocate(0) == -1
    assert a.free_blocks() == [] and a.largest_free == 0


def test_many_allocations_scale(Allocator, request):
    # O(log n): 100k live allocations with interleaved frees must stay fast in the compiled
    # version.  The pure twin's sorted lists are O(n) per insert, so it gets a smaller n.
    n = 100_000 if request.node.callspec.params["Allocator"] == "cython" else 20_000
    a = Allocator(64 * n * 2)
    t0 = time.perf_counter()
    offs = [a.allocate(64 + (i % 3) * 64) for i in range(n)]
    assert -1 not in offs
    for off in offs[::2]:
        a.free(off)
    for i in range(n // 2):
        assert a.allocate(64) != -1
    for off in offs[1::2]:
        a.free(off)
    elapsed = time.perf_counter() - t0
    assert a.num_allocations == n // 2
    if request.node.callspec.params["Allocator"] == "cython":
        assert elapsed < 2.0, f"{elapsed:.2f}s for {2.5 * n:.0f} ops"


def _check_invariants(a):
    allocs = a.allocations()
    frees = a.free_blocks()
    assert allocs == sorted(allocs) and frees == sorted(frees)
    assert a.used == sum(size for _, size in allocs)
    assert a.used + a.free_bytes == a.capacity
    assert a.num_allocations == len(allocs)
    assert a.largest_free == max((size for _, size in frees), default=0)
    for off, size in allocs:
        assert off % a.alignment == 0 and size % a.alignment == 0 and size > 0
        assert off + size <= a.high_water <= a.capacity
        assert a.size_of(off) == size
    # Live and free blocks tile [0, capacity) exactly: no overlap, nothing lost, all in range.
    pos = 0
    for off, size in sorted(allocs + [(off, size) for off, size in frees]):
        assert off == pos, (allocs, frees)
        pos += size
    assert pos == a.capacity
    # Fully coalesced: no two free blocks touch.
    for (o1, s1), (o2, _) in zip(frees, frees[1:]):
        assert o1 + s1 < o2


# Few distinct sizes, so equal-sized holes (where the tie-break matters) are common.
_sizes = st.one_of(
    st.sampled_from([0, 1, 64, 65, 128, 192, 4096]),
    st.integers(0, 3).map(lambda k: k * 64),
    st.integers(0, 70 * 64),
)


def _make_machine(Allocator):
    class AllocatorMachine(RuleBasedStateMachine):
        @initialize(
            units=st.integers(0, 64),
            alignment=st.sampled_from([1, 8, 64, 4096]),
            tail=st.integers(0, 7),
        )
        def setup(self, units, alignment, tail):
            self.a = Allocator(units * alignment + tail, alignment)
            self.live = {}

        @rule(size=_sizes)
        def allocate(self, size):
            need = _rounded(size, self.a.alignment)
            fitting = [(s, o) for o, s in self.a.free_blocks() if s >= need]
            off = self.a.allocate(size)
            if not fitting:
                assert off == -1
                return
            assert off == min(fitting)[1]  # best fit, ties to the lowest offset
            self.live[off] = need

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def free(self, data):
            off = data.draw(st.sampled_from(sorted(self.live)))
            assert self.a.free(off) == self.live.pop(off)

        @rule(data=st.data())
        def free_bad_offset(self, data):
            off = data.draw(st.integers(-1, self.a.capacity + 1))
            if off in self.live:
                return
            before = (self.a.allocations(), self.a.free_blocks())
            with pytest.raises(KeyError):
                self.a.free(off)
            assert (self.a.allocations(), self.a.free_blocks()) == before

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def double_free(self, data):
            off = data.draw(st.sampled_from(sorted(self.live)))
            self.a.free(off)
            del self.live[off]
            with pytest.raises(KeyError):
                self.a.free(off)

        @invariant()
        def consistent(self):
            if hasattr(self, "a"):
                assert sorted(self.live.items()) == self.a.allocations()
                _check_invariants(self.a)

    return AllocatorMachine


def test_state_machine(Allocator):
    run_state_machine_as_test(
        _make_machine(Allocator),
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), _sizes),
        st.tuples(st.just("free"), st.integers(0, 10**6)),
    ),
    min_size=30,
    max_size=200,
)


@settings(max_examples=80, deadline=None)
@given(capacity=st.integers(0, 20_000), alignment=st.sampled_from([1, 16, 64]), ops=_ops)
def test_compiled_and_pure_decide_identically(both_allocators, capacity, alignment, ops):
    compiled, pure = both_allocators
    allocators = [compiled(capacity, alignment), pure(capacity, alignment)]
    live = []
    for op, arg in ops:
        if op == "alloc":
            results = [a.allocate(arg) for a in allocators]
            if results[0] != -1:
                live.append(results[0])
        elif live:
            off = live.pop(arg % len(live))
            results = [a.free(off) for a in allocators]
        else:
            continue
        assert results[0] == results[1], (op, arg)
    c, p = allocators
    assert c.allocations() == p.allocations()
    assert c.free_blocks() == p.free_blocks()
    assert (c.used, c.high_water, c.largest_free) == (p.used, p.high_water, p.largest_free)
