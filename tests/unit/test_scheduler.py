"""LocalScheduler: example tests plus a hypothesis state machine that plays the daemon.

The machine models what the node daemon does with the scheduler's instructions: a StartWorker
becomes a pending start that later registers (worker_started) or fails (worker_start_failed); a
StopWorker makes the worker exit later (worker_exited); Grants hand a worker to a client, which
may block in ``get`` (set_blocked), submit nested requests, return the lease (optionally killing
the worker), have it resized (actors), or exit.

Checked after every step: ``check_invariants()``; resources within [0, total]; every request is
queued (possibly reported infeasible), granted once, or cancelled -- never lost; no Grant twice
per (client, request_id), only to an idle worker, never for a shape above the node total; a
worker holds at most one lease; Infeasible at most once per request and only for shapes above
the total; held + owed == need; debts are repaid before CPU sits free; the pool's size matches
the starts asked for; and the scheduler is work-conserving (no fitting request waits while a
worker idles, and one that lacks a worker has one on the way unless the pool is full).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from zray._private.common import resources as R
from zray._private.node.scheduler import (
    CPU,
    IDLE,
    LEASED,
    Grant,
    Infeasible,
    LeaseLost,
    LocalScheduler,
    StartWorker,
    StopWorker,
    WorkerLimitReached,
)

U = R.UNIT


def units(**amounts) -> dict:
    return R.to_units(amounts)


def kinds(instructions) -> list:
    return [type(i).__name__ for i in instructions]


def started(sched: LocalScheduler, *worker_ids) -> list:
    out = []
    for w in worker_ids:
        out += sched.worker_started(w)
    return out


# ================================================================== examples


def test_start_asks_for_min_workers():
    sched = LocalScheduler(units(CPU=2), min_workers=3)
    assert sched.start() == [StartWorker()] * 3
    assert sched.starting == 3
    assert started(sched, b"w1", b"w2") == []
    assert sched.starting == 1
    assert sched.workers == {b"w1": IDLE, b"w2": IDLE}
    sched.check_invariants()


def test_grant_when_free():
    sched = LocalScheduler(units(CPU=2), min_workers=1)
    sched.start()
    sched.worker_started(b"w1")
    out = sched.request_lease(b"c", 1, units(CPU=1))
    assert out == [Grant(b"c", 1, 1, b"w1")]
    assert sched.available == {"CPU": U}
    assert sched.workers[b"w1"] == LEASED
    assert sched.worker_lease == {b"w1": 1}
    sched.check_invariants()


def test_request_before_any_worker_starts_one_and_is_granted_when_it_registers():
    sched = LocalScheduler(units(CPU=2), min_workers=0)
    assert sched.start() == []
    assert sched.request_lease(b"c", 1, units(CPU=1)) == [StartWorker()]
    # A second request while that start is pending asks for one more worker, not two.
    assert sched.request_lease(b"c", 2, units(CPU=1)) == [StartWorker()]
    assert sched.starting == 2
    assert sched.worker_started(b"w1") == [Grant(b"c", 1, 1, b"w1")]
    assert sched.worker_started(b"w2") == [Grant(b"c", 2, 2, b"w2")]
    assert sched.starting == 0
    sched.check_invariants()


def test_requests_start_no_more_workers_than_free_resources_can_run():
    """Four owners with ten lease requests each on a 2-CPU node without idle workers: two
    workers start, not forty (each one the cap allowed was forked, then sat idle, and the
    owners paid for connecting to them all)."""
    sched = LocalScheduler(units(CPU=2), min_workers=0, max_extra_workers=32)
    out = []
    for client in (b"a", b"b", b"c", b"d"):
        for request_id in range(10):
            out += sched.request_lease(client, request_id, units(CPU=1))
    assert out == [StartWorker(), StartWorker()] and sched.starting == 2
    [first] = started(sched, b"w1")
    [second] = started(sched, b"w2")
    assert (first.request_id, second.request_id) == (0, 1)
    assert sched.return_lease(first.lease_id) == [Grant(b"a", 2, 3, b"w1")]  # reused
    # Half a CPU each: a freed CPU starts two workers for four such requests, not four.
    sched = LocalScheduler(units(CPU=1), min_workers=0)
    out = []
    for request_id in range(4):
        out += sched.request_lease(b"e", request_id, units(CPU=0.5))
    assert out == [StartWorker(), StartWorker()]
    sched.check_invariants()


def test_startup_concurrency_bounds_workers_starting_at_once():
    """A thousand actors asked at once must not fork a thousand workers together: the rest
    start as earlier ones register."""
    sched = LocalScheduler(units(CPU=2), min_workers=0, startup_concurrency=2)
    out = []
    for request_id in range(10):
        out += sched.request_lease(b"head", request_id, units(), for_actor=True)
    assert out == [StartWorker(), StartWorker()] and sched.starting == 2
    assert kinds(sched.worker_started(b"w0")) == ["Grant", "StartWorker"]
    assert sched.starting == 2
    sched.check_invariants()


def test_failed_start_is_retried_while_requests_wait():
    sched = LocalScheduler(units(CPU=1), min_workers=0)
    assert sched.request_lease(b"c", 1, units(CPU=1)) == [StartWorker()]
    assert sched.worker_start_failed() == [StartWorker()]
    assert sched.starting == 1
    assert sched.worker_started(b"w") == [Grant(b"c", 1, 1, b"w")]


def test_queue_when_busy_and_grant_on_return():
    sched = LocalScheduler(units(CPU=1), min_workers=2)
    sched.start()
    started(sched, b"w1", b"w2")
    [g1] = sched.request_lease(b"a", 1, units(CPU=1))
    assert sched.request_lease(b"b", 7, units(CPU=1)) == []  # no CPU left; an idle worker exists
    assert list(sched.queue) == [(b"b", 7)]
    out = sched.return_lease(g1.lease_id)
    assert out == [Grant(b"b", 7, 2, g1.worker_id)]  # the returned worker is reused
    assert not sched.queue
    sched.check_invariants()


def test_return_with_kill_stops_worker_and_never_reuses_it():
    sched = LocalScheduler(units(CPU=1), min_workers=1)
    sched.start()
    sched.worker_started(b"w1")
    [g] = sched.request_lease(b"a", 1, units(CPU=1))
    sched.request_lease(b"a", 2, units(CPU=1))
    out = sched.return_lease(g.lease_id, kill_worker=True)
    assert out[0] == StopWorker(b"w1")
    assert not any(isinstance(i, Grant) for i in out)
    assert StartWorker() in out  # the queued request needs a worker
    # The stopped worker exits later; it was the only one, so min_workers asks for none more
    # (one start is already pending).
    assert sched.worker_exited(b"w1") == []
    assert sched.worker_started(b"w2") == [Grant(b"a", 2, 2, b"w2")]
    sched.check_invariants()


def test_cancel_request_removes_it():
    sched = LocalScheduler(units(CPU=1), min_workers=0)
    sched.request_lease(b"a", 1, units(CPU=1))
    assert sched.cancel_request(b"a", 1) == []
    assert sched.cancel_request(b"a", 1) == []  # idempotent
    assert sched.worker_started(b"w") == []
    assert not sched.leases


def test_blocked_worker_frees_cpu_for_nested_request_then_owes_it_back():
    sched = LocalScheduler(units(CPU=1), min_workers=2)
    sched.start()
    started(sched, b"w1", b"w2")
    [outer] = sched.request_lease(b"driver", 1, units(CPU=1))
    # The outer task submits a nested one: no CPU left, so it queues.
    assert sched.request_lease(outer.worker_id, 1, units(CPU=1)) == []
    # The outer task blocks in get(): its CPU goes back and the nested task runs.
    out = sched.set_blocked(outer.worker_id, True)
    assert out == [Grant(outer.worker_id, 1, 2, b"w1" if outer.worker_id == b"w2" else b"w2")]
    [inner] = out
    assert sched.available == {"CPU": 0}
    assert sched.leases[outer.lease_id].held == {"CPU": 0}
    sched.check_invariants()
    # Another request queues behind the debt that is about to appear.
    sched.request_lease(b"driver", 2, units(CPU=1))
    # The outer task unblocks while the inner still runs: nothing is free, so it owes 1 CPU.
    assert sched.set_blocked(outer.worker_id, False) == []
    lease = sched.leases[outer.lease_id]
    assert lease.held == {"CPU": 0} and lease.owed == {"CPU": U}
    sched.check_invariants()
    # The inner lease returns: its CPU repays the debt before the queued request sees it.
    out = sched.return_lease(inner.lease_id)
    assert not any(isinstance(i, Grant) for i in out)
    assert lease.held == {"CPU": U} and lease.owed == {}
    assert sched.available == {"CPU": 0}
    assert (b"driver", 2) in sched.queue
    sched.check_invariants()
    # Only when the outer lease returns is the queued request granted.
    out = sched.return_lease(outer.lease_id)
    assert [type(i) for i in out] == [Grant] and out[0].request_id == 2
    sched.check_invariants()


def test_unblock_takes_back_what_is_free_and_owes_the_rest():
    sched = LocalScheduler(units(CPU=2), min_workers=3)
    sched.start()
    started(sched, b"w1", b"w2", b"w3")
    [outer] = sched.request_lease(b"d", 1, units(CPU=2))
    sched.set_blocked(outer.worker_id, True)
    [inner] = sched.request_lease(b"d", 2, units(CPU=1))
    sched.set_blocked(outer.worker_id, False)
    lease = sched.leases[outer.lease_id]
    assert lease.held == {"CPU": U} and lease.owed == {"CPU": U}
    assert sched.available == {"CPU": 0}
    sched.check_invariants()
    # Blocking again while owing: gives back only what it holds, forgets the debt.
    sched.set_blocked(outer.worker_id, True)
    assert lease.held == {"CPU": 0} and lease.owed == {}
    assert sched.available == {"CPU": U}
    sched.check_invariants()
    # Repeated notifications are no-ops.
    assert sched.set_blocked(outer.worker_id, True) == []
    assert sched.set_blocked(b"not-a-worker", True) == []
    sched.return_lease(inner.lease_id)
    sched.return_lease(outer.lease_id)
    assert sched.available == {"CPU": 2 * U}
    sched.check_invariants()


def test_debt_is_repaid_in_fractional_installments():
    sched = LocalScheduler(units(CPU=1), min_workers=3)
    sched.start()
    started(sched, b"w1", b"w2", b"w3")
    [outer] = sched.request_lease(b"d", 1, units(CPU=1))
    sched.set_blocked(outer.worker_id, True)
    [n1] = sched.request_lease(outer.worker_id, 1, units(CPU=0.5))
    [n2] = sched.request_lease(outer.worker_id, 2, units(CPU=0.5))
    sched.set_blocked(outer.worker_id, False)
    lease = sched.leases[outer.lease_id]
    assert lease.held == {"CPU": 0} and lease.owed == {"CPU": U}
    sched.request_lease(b"d", 2, units(CPU=0.25))  # must wait until the debt is paid
    assert sched.return_lease(n1.lease_id) == []
    assert lease.held == {"CPU": U // 2} and lease.owed == {"CPU": U // 2}
    assert sched.available == {"CPU": 0}
    sched.check_invariants()
    assert sched.return_lease(n2.lease_id) == []
    assert lease.held == {"CPU": U} and lease.owed == {}
    assert sched.available == {"CPU": 0}
    sched.check_invariants()


def test_blocked_lease_without_cpu_changes_nothing():
    sched = LocalScheduler(units(CPU=1, x=1), min_workers=1)
    sched.start()
    sched.worker_started(b"w")
    [g] = sched.request_lease(b"c", 1, units(x=1))
    before = dict(sched.available)
    assert sched.set_blocked(b"w", True) == []
    assert sched.available == before
    assert sched.set_blocked(b"w", False) == []
    assert sched.available == before
    sched.check_invariants()


def test_fractional_half_cpu_packing():
    """Four 0.5-CPU leases fit on 2 CPUs; a fifth waits for one of them."""
    sched = LocalScheduler(units(CPU=2), min_workers=5)
    sched.start()
    started(sched, *[b"w%d" % i for i in range(5)])
    grants = []
    for rid in range(1, 5):
        out = sched.request_lease(b"c", rid, units(CPU=0.5))
        assert kinds(out) == ["Grant"]
        grants += out
    assert sched.available == {"CPU": 0}
    assert len({g.worker_id for g in grants}) == 4
    assert sched.request_lease(b"c", 5, units(CPU=0.5)) == []
    out = sched.return_lease(grants[0].lease_id)
    assert kinds(out) == ["Grant"] and out[0].request_id == 5
    assert sched.available == {"CPU": 0}
    sched.check_invariants()
    for g in grants[1:] + out:
        sched.return_lease(g.lease_id)
    assert sched.available == {"CPU": 2 * U}
    sched.check_invariants()


def test_resize_lease_shrinks_and_frees_resources_for_queued_requests():
    sched = LocalScheduler(units(CPU=1, GPU=1), min_workers=2)
    sched.start()
    started(sched, b"w1", b"w2")
    [actor] = sched.request_lease(b"head", 1, units(CPU=1, GPU=1))
    assert sched.request_lease(b"d", 1, units(CPU=1)) == []
    # Growing, adding a resource, or an unknown lease: refused, nothing changes.
    assert sched.resize_lease(actor.lease_id, units(CPU=2)) == []
    assert sched.resize_lease(actor.lease_id, units(CPU=1, custom=1)) == []
    assert sched.resize_lease(12345, {}) == []
    assert sched.leases[actor.lease_id].need == units(CPU=1, GPU=1)
    # Shrinking to no CPU (an actor runs with 0 CPUs by default) lets the queued task run.
    out = sched.resize_lease(actor.lease_id, units(GPU=1))
    assert [(type(i), i.request_id) for i in out] == [(Grant, 1)]
    assert sched.leases[actor.lease_id].held == units(GPU=1)
    sched.check_invariants()
    sched.return_lease(actor.lease_id)
    assert sched.available == {"CPU": 0, "GPU": U}
    sched.check_invariants()


def test_resize_of_blocked_or_indebted_lease_applies():
    """An actor whose constructor blocks in get() before the resize arrives must not keep its
    placement CPU for life: the resize also applies to blocked and indebted leases."""
    sched = LocalScheduler(units(CPU=1), min_workers=2)
    sched.start()
    started(sched, b"w1", b"w2")
    [actor] = sched.request_lease(b"head", 1, units(CPU=1))
    sched.set_blocked(actor.worker_id, True)
    [nested] = sched.request_lease(actor.worker_id, 1, units(CPU=1))
    sched.set_blocked(actor.worker_id, False)  # owes its CPU now
    assert sched.leases[actor.lease_id].owed == {"CPU": U}
    assert sched.resize_lease(actor.lease_id, {}) == []
    lease = sched.leases[actor.lease_id]
    assert lease.owed == {} and lease.held == {} and lease.need == {}
    sched.check_invariants()
    sched.return_lease(nested.lease_id)
    assert sched.available == {"CPU": U}  # nothing is owed any more: the CPU is free
    sched.check_invariants()

    sched.set_blocked(actor.worker_id, True)
    assert sched.resize_lease(actor.lease_id, {}) == []
    sched.set_blocked(actor.worker_id, False)
    assert sched.available == {"CPU": U}
    sched.check_invariants()


def test_first_lease_id():
    sched = LocalScheduler(units(CPU=1), min_workers=1, first_lease_id=2**40)
    sched.start()
    sched.worker_started(b"w")
    assert sched.request_lease(b"c", 1, units(CPU=1)) == [Grant(b"c", 1, 2**40, b"w")]


def test_tenth_cpus_sum_exactly():
    sched = LocalScheduler(units(CPU=1), min_workers=11)
    sched.start()
    started(sched, *[b"w%d" % i for i in range(11)])
    grants = []
    for rid in range(10):
        grants += sched.request_lease(b"c", rid, units(CPU=0.1))
    assert len(grants) == 10 and sched.available == {"CPU": 0}
    assert sched.request_lease(b"c", 10, units(CPU=0.1)) == []
    sched.check_invariants()


def test_infeasible_reported_once_and_stays_queued():
    sched = LocalScheduler(units(CPU=2), min_workers=1)
    sched.start()
    sched.worker_started(b"w")
    need = units(CPU=4)
    assert sched.request_lease(b"c", 1, need) == [Infeasible(b"c", 1, need)]
    assert (b"c", 1) in sched.queue
    # Later scheduling passes do not repeat the report.
    [g] = sched.request_lease(b"c", 2, units(CPU=1))
    assert kinds(sched.return_lease(g.lease_id)) == []
    assert sched.request_lease(b"c", 3, units(GPU=1)) == [Infeasible(b"c", 3, units(GPU=1))]
    assert sched.request_lease(b"c", 4, units(CPU=1)) == [Grant(b"c", 4, 2, b"w")]
    # Capacity grows: the infeasible request becomes grantable.
    sched.return_lease(2)
    sched.add_total(units(CPU=2))
    assert sched.return_lease(999) == []
    assert sched.cancel_request(b"c", 3) == []
    sched.worker_started(b"w2")
    assert (b"c", 1) not in sched.queue
    sched.check_invariants()


def test_worker_exit_loses_lease_and_restarts_up_to_min():
    sched = LocalScheduler(units(CPU=1), min_workers=1)
    sched.start()
    sched.worker_started(b"w")
    [g] = sched.request_lease(b"c", 1, units(CPU=1))
    out = sched.worker_exited(b"w")
    assert out == [LeaseLost(b"c", g.lease_id, b"w"), StartWorker()]
    assert sched.available == {"CPU": U} and not sched.leases
    assert sched.worker_exited(b"w") == []  # a second report of the same exit
    sched.check_invariants()


def test_client_exit_drops_requests_and_kills_its_workers():
    sched = LocalScheduler(units(CPU=2), min_workers=2)
    sched.start()
    started(sched, b"w1", b"w2")
    [g] = sched.request_lease(b"a", 1, units(CPU=2))
    sched.request_lease(b"a", 2, units(CPU=1))
    sched.request_lease(b"b", 1, units(CPU=1))
    out = sched.client_exited(b"a")
    assert StopWorker(g.worker_id) in out
    grants = [i for i in out if isinstance(i, Grant)]
    assert [(i.client, i.request_id) for i in grants] == [(b"b", 1)]
    assert grants[0].worker_id != g.worker_id
    assert list(sched.queue) == []
    sched.check_invariants()


def test_pool_never_exceeds_max_workers():
    sched = LocalScheduler(units(CPU=100), min_workers=1, max_extra_workers=2)
    out = sched.start()
    for rid in range(10):
        out += sched.request_lease(b"c", rid, units(CPU=1))
    assert out.count(StartWorker()) == sched.max_workers == 3
    assert sched.starting == 3


def test_blocked_workers_filling_the_pool_are_reported_once():
    sched = LocalScheduler(units(CPU=1), min_workers=1, max_extra_workers=1)
    sched.start()
    out = started(sched, b"w1") + sched.request_lease(b"driver", 0, units(CPU=1))
    assert kinds(out) == ["Grant"]
    assert sched.set_blocked(b"w1", True) == []  # nothing queued yet
    out = sched.request_lease(b"w1", 0, units(CPU=1))
    assert out == [StartWorker()]  # the one extra worker the cap allows
    out = started(sched, b"w2")
    assert kinds(out) == ["Grant"]
    assert sched.set_blocked(b"w2", True) == []
    # The CPU is free again but the pool is full: the wait is reported, once, with the cause.
    out = sched.request_lease(b"w2", 0, units(CPU=1))
    assert out == [WorkerLimitReached(limit=2, blocked=2)]
    assert sched.request_lease(b"w2", 1, units(CPU=1)) == []
    assert len(sched.queue) == 2
    sched.check_invariants()


def test_pool_limit_is_not_reported_when_requests_wait_for_cpu():
    sched = LocalScheduler(units(CPU=1), min_workers=1, max_extra_workers=0)
    sched.start()
    out = started(sched, b"w1")
    for rid in range(5):
        out += sched.request_lease(b"driver", rid, units(CPU=1))
    assert kinds(out) == ["Grant"]  # the others wait for the CPU, not for a process


# ================================================================== state machine

CLIENTS = (b"c0", b"c1", b"c2")
CPU_SHAPES = [
    R.to_units(shape)
    for shape in (
        {"CPU": 1},
        {"CPU": 0.5},
        {"CPU": 0.25},
        {"CPU": 2},
        {"CPU": 1},
        {"CPU": 0.5},
        {},
        {"CPU": 1, "GPU": 1},
        {"CPU": 0.5, "custom": 0.5},
        {"custom": 1},
        {"GPU": 0.5},
    )
]
INFEASIBLE_SHAPES = [
    R.to_units(shape)
    for shape in (
        {"CPU": 16},
        {"CPU": 1, "nowhere": 1},
        {"GPU": 4},
        {"custom": 100},
    )
]
mixed_shapes = st.builds(
    lambda cpu, gpu, custom, unknown: R.to_units(
        {"CPU": cpu, "GPU": gpu, "custom": custom, "nowhere": unknown}
    ),
    st.sampled_from((0, 0.25, 0.5, 1, 2, 3, 16)),
    st.sampled_from((0, 0.5, 1, 4)),
    st.sampled_from((0, 0.5, 1, 2, 100)),
    st.sampled_from((0, 0, 0, 1)),
)
# Mostly shapes that fit a typical node; sometimes random mixtures or shapes that never fit.
shapes = (
    st.sampled_from(
        [st.sampled_from(CPU_SHAPES)] * 6 + [mixed_shapes, st.sampled_from(INFEASIBLE_SHAPES)]
    )
    .flatmap(lambda strategy: strategy)
    .map(dict)
)


class SchedulerMachine(RuleBasedStateMachine):
    """Plays the node daemon against LocalScheduler and keeps a model of what it was told.

    Clients are drivers (CLIENTS) and leased workers submitting nested tasks. Rules are weighted
    toward building load (bursts of requests, workers registering) because uniform rule choice
    otherwise drains the node faster than it fills and rarely reaches blocked workers in debt.
    """

    @initialize(
        cpus=st.sampled_from((2, 1, 4, 2, 1, 0)),
        gpus=st.sampled_from((1, 2, 1, 2, 0)),
        custom=st.sampled_from((1, 3, 1, 3, 0.5, 0)),
        min_workers=st.sampled_from((2, 3, 4, 1, 0)),
        max_extra=st.integers(0, 4),
        first_lease_id=st.sampled_from((1, 2**40 + 7)),
        initial=st.lists(st.tuples(st.sampled_from(CLIENTS), shapes), max_size=5),
    )
    def setup(self, cpus, gpus, custom, min_workers, max_extra, first_lease_id, initial):
        self.total = R.to_units({"CPU": cpus, "GPU": gpus, "custom": custom})
        self.sched = LocalScheduler(
            self.total, min_workers, max_extra, first_lease_id=first_lease_id
        )
        self.first_lease_id = first_lease_id
        self.requests: dict[tuple, dict] = {}  # key -> need, for every request ever made
        self.queued: set[tuple] = set()
        self.granted: set[tuple] = set()
        self.cancelled: set[tuple] = set()
        self.infeasible: set[tuple] = set()
        self.next_rid = Counter()
        self.leases: dict[int, dict] = {}  # lease_id -> key, worker, client, blocked, need
        self.lease_ids_seen: set[int] = set()
        self.workers: dict[bytes, str] = {}  # worker -> idle | leased | stopping
        self.pending_starts = 0
        self.worker_seq = 0
        self.apply(self.sched.start())
        assert self.pending_starts == min_workers
        # The daemon boots the initial pool at once; usually all of it registers right away.
        for _ in range(min_workers - (min_workers == 4)):
            self._worker_started()
        for client, need in initial:  # start with some load so leases exist early
            self._request(client, need)

    # -------------------------------------------------------------- instruction handling

    def apply(self, out, expect_stop=(), expect_lost=(), expect_start=None):
        """Checks each instruction against the model, then updates the model as the daemon
        would act on it. expect_* are instructions the event must (and may only) produce."""
        stops, lost = [], []
        starts = 0
        for ins in out:
            if isinstance(ins, Grant):
                key = (ins.client, ins.request_id)
                assert key in self.requests, ins
                assert key not in self.granted, f"granted twice: {ins}"
                assert key in self.queued, f"grant for a request not queued: {ins}"
                need = self.requests[key]
                assert R.fits(need, self.total), ins
                assert self.workers.get(ins.worker_id) == "idle", (ins, self.workers)
                assert ins.lease_id not in self.lease_ids_seen, ins
                assert ins.lease_id >= self.first_lease_id, ins
                assert ins.worker_id not in {l["worker"] for l in self.leases.values()}
                self.queued.discard(key)
                self.granted.add(key)
                self.lease_ids_seen.add(ins.lease_id)
                self.leases[ins.lease_id] = {
                    "key": key,
                    "worker": ins.worker_id,
                    "client": ins.client,
                    "blocked": False,
                    "need": dict(need),
                }
                self.workers[ins.worker_id] = "leased"
            elif isinstance(ins, Infeasible):
                key = (ins.client, ins.request_id)
                assert key in self.queued, ins
                assert key not in self.infeasible, f"infeasible reported twice: {ins}"
                assert ins.need == self.requests[key]
                assert not R.fits(ins.need, self.sched.total), ins
                self.infeasible.add(key)
            elif isinstance(ins, StartWorker):
                starts += 1
                self.pending_starts += 1
            elif isinstance(ins, StopWorker):
                stops.append(ins)
            elif isinstance(ins, LeaseLost):
                lost.append(ins)
            elif isinstance(ins, WorkerLimitReached):
                assert not getattr(self, "limit_reported", False), f"reported twice: {ins}"
                self.limit_reported = True
                assert ins.limit == self.sched.max_workers, ins
            else:
                raise AssertionError(f"unknown instruction {ins!r}")
        assert sorted(stops, key=repr) == sorted(expect_stop, key=repr), (stops, expect_stop)
        assert sorted(lost, key=repr) == sorted(expect_lost, key=repr), (lost, expect_lost)
        for ins in stops:
            self.workers[ins.worker_id] = "stopping"
        if expect_start is not None:
            assert starts >= expect_start, (out, expect_start)
        return out

    def _request(self, client, need):
        rid = self.next_rid[client]
        self.next_rid[client] += 1
        key = (client, rid)
        self.requests[key] = need
        self.queued.add(key)
        out = self.apply(self.sched.request_lease(client, rid, need))
        if not R.fits(need, self.total):
            assert Infeasible(client, rid, need) in out  # reported at once
            assert key in self.queued

    def _worker_started(self):
        self.pending_starts -= 1
        self.worker_seq += 1
        worker = b"w%d" % self.worker_seq
        self.workers[worker] = "idle"
        self.apply(self.sched.worker_started(worker))

    def _block(self, lease, blocked):
        lease["blocked"] = blocked
        out = self.sched.set_blocked(lease["worker"], blocked)
        if blocked:
            self.apply(out)
        else:
            assert out == []  # unblocking only takes resources back (or owes them)

    # -------------------------------------------------------------- rules: clients

    @rule(client=st.sampled_from(CLIENTS), needs=st.lists(shapes, min_size=1, max_size=4))
    def request_lease(self, client, needs):
        for need in needs:
            self._request(client, need)

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def cancel_request(self, data):
        """Cancels a queued request, or one already granted or cancelled (a race: no-op)."""
        key = data.draw(st.sampled_from(sorted(self.requests)))
        assert self.sched.cancel_request(*key) == []
        if key in self.queued:
            self.queued.discard(key)
            self.cancelled.add(key)

    @precondition(lambda self: self.lease_ids_seen)
    @rule(data=st.data(), kill=st.booleans())
    def return_lease(self, data, kill):
        stale = sorted(self.lease_ids_seen - set(self.leases))
        if not self.leases or (stale and data.draw(st.sampled_from((False,) * 9 + (True,)))):
            # A duplicate or late ReturnLease for a lease that is already gone.
            assert self.sched.return_lease(data.draw(st.sampled_from(stale)), kill) == []
            return
        lease_id = data.draw(st.sampled_from(sorted(self.leases)))
        lease = self.leases.pop(lease_id)
        if not kill:
            self.workers[lease["worker"]] = "idle"
        self.apply(
            self.sched.return_lease(lease_id, kill_worker=kill),
            expect_stop=[StopWorker(lease["worker"])] if kill else [],
        )

    @precondition(lambda self: self.leases)
    @rule(
        data=st.data(),
        need=st.one_of(st.none(), shapes),
        worker_arrives=st.booleans(),
        unblock_at_once=st.booleans(),
    )
    def nested_request(self, data, need, worker_arrives, unblock_at_once):
        """A leased worker submits a task of its own (by default of its own shape, as recursive
        tasks do) and blocks in get() for it. While it is blocked a pending worker may register
        (so the nested task can start), and it may unblock straight away (the value arrived
        another way): the way into debt."""
        lease_id = data.draw(st.sampled_from(sorted(self.leases)))
        lease = self.leases[lease_id]
        if need is None:
            need = dict(self.requests[lease["key"]])
        self._request(lease["worker"], need)
        if lease_id in self.leases and not lease["blocked"]:
            self._block(lease, True)
            if worker_arrives and self.pending_starts:
                self._worker_started()
            if unblock_at_once:
                self._block(lease, False)

    @precondition(lambda self: any(not l["blocked"] for l in self.leases.values()))
    @rule(data=st.data())
    def leased_worker_blocks(self, data):
        lease = data.draw(
            st.sampled_from([l for _, l in sorted(self.leases.items()) if not l["blocked"]])
        )
        self._block(lease, True)

    @precondition(lambda self: any(l["blocked"] for l in self.leases.values()))
    @rule(data=st.data())
    def leased_worker_unblocks(self, data):
        lease = data.draw(
            st.sampled_from([l for _, l in sorted(self.leases.items()) if l["blocked"]])
        )
        self._block(lease, False)

    @rule(data=st.data(), blocked=st.booleans())
    def set_blocked(self, data, blocked):
        """NotifyBlocked from any client: idle, leased or stopping workers, or a driver (which
        holds no lease, so nothing changes)."""
        worker = data.draw(st.sampled_from(sorted(self.workers) + list(CLIENTS)))
        held = [l for l in self.leases.values() if l["worker"] == worker]
        if held:
            self._block(held[0], blocked)
        else:
            assert self.sched.set_blocked(worker, blocked) == []

    @precondition(lambda self: self.queued or self.leases)
    @rule(data=st.data())
    def client_exited(self, data):
        active = {k[0] for k in self.queued} | {l["client"] for l in self.leases.values()}
        client = data.draw(st.sampled_from(sorted(active | set(CLIENTS))))
        for key in [k for k in self.queued if k[0] == client]:
            self.queued.discard(key)
            self.cancelled.add(key)
        stops = []
        for lease_id, lease in list(self.leases.items()):
            if lease["client"] == client:
                del self.leases[lease_id]
                stops.append(StopWorker(lease["worker"]))
        self.apply(self.sched.client_exited(client), expect_stop=stops)

    # -------------------------------------------------------------- rules: worker pool

    @precondition(lambda self: self.pending_starts > 0)
    @rule(ok=st.sampled_from((True, True, True, False)))
    def worker_start_done(self, ok):
        """A worker the scheduler asked for registers (worker_started), or dies or times out
        before registering (worker_start_failed)."""
        if ok:
            self._worker_started()
        else:
            self.pending_starts -= 1
            self.apply(self.sched.worker_start_failed())

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), cpu=st.sampled_from((0, 0, 0.5, 1, 3)), keep_others=st.booleans())
    def resize_lease(self, data, cpu, keep_others):
        """An actor placed with its creation resources shrinks to what it runs with (usually
        0 CPU), blocked or indebted or not; growing is refused."""
        lease_id = data.draw(st.sampled_from(sorted(self.leases)))
        model = self.leases[lease_id]
        lease = self.sched.leases[lease_id]
        need = {name: v for name, v in model["need"].items() if keep_others and name != CPU}
        need.update(R.to_units({CPU: cpu}))
        refused = any(amount > lease.need.get(name, 0) for name, amount in need.items())
        before = (dict(self.sched.available), dict(lease.held))
        out = self.apply(self.sched.resize_lease(lease_id, need))
        if refused:
            assert out == []
            assert (self.sched.available, lease.held) == before
        else:
            model["need"] = dict(need)
            assert lease.need == need
            assert all(
                lease.held.get(k, 0) + lease.owed.get(k, 0) <= need.get(k, 0)
                for k in set(lease.held) | set(lease.owed)
            )
            if not lease.blocked and not lease.owed:
                assert lease.held == {k: v for k, v in need.items() if v}

    @precondition(lambda self: self.workers)
    @rule(data=st.data())
    def worker_exited(self, data):
        """An idle, leased or stopping worker exits (crash, or after a StopWorker)."""
        worker = data.draw(st.sampled_from(sorted(self.workers)))
        state = self.workers.pop(worker)
        lost = []
        for lease_id, lease in list(self.leases.items()):
            if lease["worker"] == worker:
                assert state == "leased"
                del self.leases[lease_id]
                lost.append(LeaseLost(lease["client"], lease_id, worker))
        below_min = len(self.workers) + self.pending_starts < self.sched.min_workers
        out = self.apply(
            self.sched.worker_exited(worker),
            expect_lost=lost,
            expect_start=1 if below_min else None,
        )
        if lost:
            assert out[0] == lost[0]  # the holder hears before anything else happens

    # -------------------------------------------------------------- invariants

    @invariant()
    def consistent(self):
        # One invariant calling helpers: hypothesis pays a per-invariant cost on every step.
        self.sched.check_invariants()
        self._resources_in_bounds()
        self._every_request_in_exactly_one_state()
        self._leases_match_model()
        self._held_plus_owed_is_need()
        self._debts_are_repaid_first()
        self._workers_match_model()
        self._work_conserving()

    def _resources_in_bounds(self):
        s = self.sched
        assert set(s.available) <= set(s.total), (s.available, s.total)
        for name, total in s.total.items():
            assert 0 <= s.available.get(name, 0) <= total, (name, s.available, s.total)
        for lease in s.leases.values():
            for name, amount in lease.held.items():
                assert 0 <= amount <= lease.need.get(name, 0), lease

    def _every_request_in_exactly_one_state(self):
        assert set(self.sched.queue) == self.queued
        assert not (self.queued & self.granted)
        assert not (self.queued & self.cancelled)
        assert self.queued | self.granted | self.cancelled == set(self.requests)
        # Total never grows in this machine, so infeasible requests are never granted.
        assert not (self.infeasible & self.granted)
        for key in self.queued:
            request = self.sched.queue[key]
            assert request.need == self.requests[key]
            assert request.reported_infeasible == (key in self.infeasible)
            # Every infeasible shape that is still queued has been reported.
            assert R.fits(request.need, self.total) or key in self.infeasible

    def _leases_match_model(self):
        s = self.sched
        assert set(s.leases) == set(self.leases)
        for lease_id, model in self.leases.items():
            lease = s.leases[lease_id]
            assert lease.worker_id == model["worker"]
            assert lease.client == model["client"]
            assert lease.need == model["need"]
            assert lease.blocked == model["blocked"]
            assert s.worker_lease[model["worker"]] == lease_id
        holders = Counter(l["worker"] for l in self.leases.values())
        assert all(n == 1 for n in holders.values()), holders

    def _held_plus_owed_is_need(self):
        for lease in self.sched.leases.values():
            for name, need in lease.need.items():
                held = lease.held.get(name, 0)
                owed = lease.owed.get(name, 0)
                if lease.blocked and name == CPU:
                    assert held == 0 and owed == 0, lease
                else:
                    assert held + owed == need, lease
            assert set(lease.owed) <= {CPU}, lease

    def _debts_are_repaid_first(self):
        """While any lease owes CPU, no CPU sits unused in the pool."""
        if any(l.owed.get(CPU) for l in self.sched.leases.values()):
            assert self.sched.available.get(CPU, 0) == 0, self.sched.available

    def _workers_match_model(self):
        s = self.sched
        assert s.starting == self.pending_starts
        assert set(s.workers) == set(self.workers)
        for worker, state in self.workers.items():
            assert s.workers[worker] == (IDLE if state == "idle" else LEASED), (worker, state)
        assert len(s.workers) + s.starting <= s.max_workers

    def _work_conserving(self):
        """No queued request fits the free resources while a worker idles, and if one fits
        but lacks a worker, a worker is on its way (or the pool is full)."""
        s = self.sched
        fitting = [r for r in s.queue.values() if R.fits(r.need, s.available)]
        if not fitting:
            return
        idle = [w for w, state in s.workers.items() if state == IDLE]
        assert not idle, (fitting, idle)
        assert s.starting > 0 or len(s.workers) >= s.max_workers, (fitting, s.workers)


# No explain phase: for a state machine it adds a minute to a failure and little insight, and
# the per-test timeout must leave room for shrinking.
SchedulerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSchedulerMachine = SchedulerMachine.TestCase
