"""The node's local scheduler as a state machine without I/O.

Events come in as method calls; each returns a list of instructions for the daemon to carry out.
Invariants (checked by tests/unit/test_scheduler.py with hypothesis):

* ``available[r] + sum(lease.held[r]) == total[r]`` and every amount is >= 0;
* a lease request is granted, reported infeasible, or still queued; never lost;
* a worker holds at most one lease.

A worker blocked in ``get`` gives its CPUs back so nested tasks can run (as Ray does); when it
unblocks it takes back what is free and *owes* the rest, which returning leases repay before
anyone else is granted.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from zray._private import resources as R
from zray._private.instances import GPU, GpuInstances

CPU = "CPU"


# ---------------------------------------------------------------- instructions

@dataclass(frozen=True)
class Grant:
    client: bytes
    request_id: int
    lease_id: int
    worker_id: bytes
    gpu_ids: tuple = ()


@dataclass(frozen=True)
class Infeasible:
    client: bytes
    request_id: int
    need: dict


@dataclass(frozen=True)
class StartWorker:
    pass


@dataclass(frozen=True)
class StopWorker:
    worker_id: bytes


@dataclass(frozen=True)
class WorkerLimitReached:
    """Requests that fit the free resources wait because the pool is at its cap (said once
    per node: the daemon warns the drivers, so a stall is never silent)."""
    limit: int
    blocked: int  # leased workers blocked in get, holding a process but no CPU


@dataclass(frozen=True)
class LeaseLost:
    """Tell the lease holder its worker died."""
    client: bytes
    lease_id: int
    worker_id: bytes


# ---------------------------------------------------------------- state

@dataclass
class Request:
    client: bytes
    request_id: int
    need: dict
    for_actor: bool = False
    reported_infeasible: bool = False


@dataclass
class Lease:
    lease_id: int
    client: bytes
    worker_id: bytes
    need: dict
    held: dict
    owed: dict = field(default_factory=dict)
    blocked: bool = False
    gpu_ids: tuple = ()  # which GPUs (instances.GpuInstances) the lease holds ...
    gpu_units: int = 0  # ... and how much of each (all of it for whole amounts)


IDLE, LEASED, STARTING = "idle", "leased", "starting"


class LocalScheduler:
    def __init__(self, total: dict, min_workers: int, max_extra_workers: int = 32,
                 first_lease_id: int = 1, startup_concurrency: int = 0):
        self.total = dict(total)
        self.available = dict(total)
        self.min_workers = min_workers
        self.max_workers = max(min_workers, 1) + max_extra_workers
        self.gpus = GpuInstances(self.total.get(GPU, 0))
        self.queue: OrderedDict[tuple, Request] = OrderedDict()
        self.leases: dict[int, Lease] = {}
        self.workers: dict[bytes, str] = {}  # worker_id -> IDLE | LEASED
        self.dedicated: set[bytes] = set()  # workers hosting actors: outside the pool's cap
        self.worker_lease: dict[bytes, int] = {}
        self.starting = 0
        self.limit_reported = False
        # Workers starting at once, beyond the initial ones (0: no bound), as Ray's
        # maximum_startup_concurrency: a thousand actors asked at once forked a thousand
        # workers together, and on two cores many missed their registration deadline.
        self.startup_concurrency = startup_concurrency
        self._lease_ids = itertools.count(first_lease_id)

    # ------------------------------------------------------------ events

    def start(self) -> list:
        self.starting += self.min_workers
        return [StartWorker() for _ in range(self.min_workers)]

    def request_lease(self, client: bytes, request_id: int, need: dict,
                      for_actor: bool = False) -> list:
        """`for_actor`: the worker will be dedicated to an actor for its lifetime, so it does
        not count against the pool's cap (every actor needs a process of its own, as in Ray)."""
        self.queue[(client, request_id)] = Request(client, request_id, dict(need), for_actor)
        return self._schedule()

    def cancel_request(self, client: bytes, request_id: int) -> list:
        self.queue.pop((client, request_id), None)
        return []

    def return_lease(self, lease_id: int, kill_worker: bool = False) -> list:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return []
        out = []
        self._release(lease)
        del self.worker_lease[lease.worker_id]
        if kill_worker:
            out.append(StopWorker(lease.worker_id))
        else:
            self.workers[lease.worker_id] = IDLE
        return out + self._schedule()

    def worker_started(self, worker_id: bytes) -> list:
        self.starting = max(0, self.starting - 1)
        self.workers[worker_id] = IDLE
        return self._schedule()

    def worker_start_failed(self) -> list:
        self.starting = max(0, self.starting - 1)
        return self._schedule()

    def worker_exited(self, worker_id: bytes) -> list:
        state = self.workers.pop(worker_id, None)
        self.dedicated.discard(worker_id)
        out = []
        lease_id = self.worker_lease.pop(worker_id, None)
        if lease_id is not None:
            lease = self.leases.pop(lease_id)
            self._release(lease)
            out.append(LeaseLost(lease.client, lease_id, worker_id))
        if state is not None and len(self.workers) + self.starting < self.min_workers:
            self.starting += 1
            out.append(StartWorker())
        return out + self._schedule()

    def client_exited(self, client: bytes) -> list:
        for key in [k for k in self.queue if k[0] == client]:
            del self.queue[key]
        out = []
        for lease in [l for l in self.leases.values() if l.client == client]:
            # The worker may be mid-task for an owner that is gone: stop it rather than reuse.
            out += self.return_lease(lease.lease_id, kill_worker=True)
        return out + self._schedule()

    def resize_lease(self, lease_id: int, need: dict) -> list:
        """Shrinks a lease to `need` (an actor placed with 1 CPU runs with 0, as in Ray). Works
        while the worker is blocked or owes CPU too: an actor whose constructor blocks in get()
        before the resize arrives must not keep its placement CPU for life."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return []
        if any(amount > lease.need.get(name, 0) for name, amount in need.items()):
            return []  # growing a lease is not supported: it could oversubscribe the node
        for name in set(lease.held) | set(lease.owed):
            target = need.get(name, 0)
            held = lease.held.get(name, 0)
            if held > target:
                self.available[name] = self.available.get(name, 0) + held - target
                held = target
            lease.held[name] = held
            owed = min(lease.owed.get(name, 0), target - held)
            if owed > 0:
                lease.owed[name] = owed
            else:
                lease.owed.pop(name, None)
        lease.held = {k: v for k, v in lease.held.items() if v}
        lease.need = dict(need)
        if not need.get(GPU):
            self._release_gpus(lease)  # a partial shrink keeps its GPUs: none happens today
        return self._schedule()

    def set_blocked(self, worker_id: bytes, blocked: bool) -> list:
        lease_id = self.worker_lease.get(worker_id)
        lease = self.leases.get(lease_id) if lease_id is not None else None
        if lease is None or lease.blocked == blocked:
            return []
        lease.blocked = blocked
        cpu = lease.need.get(CPU, 0)
        if not cpu:
            return []
        if blocked:
            given_back = lease.held.get(CPU, 0)
            lease.held[CPU] = 0
            lease.owed.pop(CPU, None)
            self.available[CPU] = self.available.get(CPU, 0) + given_back
            return self._schedule()
        taken = min(cpu, self.available.get(CPU, 0))
        self.available[CPU] -= taken
        lease.held[CPU] = taken
        if taken < cpu:
            lease.owed[CPU] = cpu - taken
        return []

    # ------------------------------------------------------------ internals

    def _release(self, lease: Lease):
        R.add(self.available, lease.held)
        self._release_gpus(lease)

    def _release_gpus(self, lease: Lease):
        if lease.gpu_ids:
            self.gpus.release(list(lease.gpu_ids), lease.gpu_units)
            lease.gpu_ids, lease.gpu_units = (), 0

    def _repay_debts(self):
        for lease in self.leases.values():
            for name, owed in list(lease.owed.items()):
                pay = min(owed, self.available.get(name, 0))
                if pay:
                    self.available[name] -= pay
                    lease.held[name] = lease.held.get(name, 0) + pay
                    if pay == owed:
                        del lease.owed[name]
                    else:
                        lease.owed[name] = owed - pay

    def _schedule(self) -> list:
        self._repay_debts()
        out = []
        idle = [w for w, state in self.workers.items() if state == IDLE]
        waiting_for_worker = waiting_for_actor = 0
        for key, request in list(self.queue.items()):
            if not R.fits(request.need, self.total):
                if not request.reported_infeasible:
                    request.reported_infeasible = True
                    out.append(Infeasible(request.client, request.request_id, request.need))
                continue
            if not R.fits(request.need, self.available):
                continue
            if not idle:
                if request.for_actor:
                    waiting_for_actor += 1
                else:
                    waiting_for_worker += 1
                continue
            gpu_units = request.need.get(GPU, 0)
            gpu_ids = self.gpus.assign(gpu_units) if gpu_units else []
            if gpu_ids is None:
                continue  # enough GPU in total, but spread over too many GPUs
            worker_id = idle.pop()
            del self.queue[key]
            lease = Lease(next(self._lease_ids), request.client, worker_id,
                          request.need, dict(request.need), gpu_ids=tuple(gpu_ids),
                          gpu_units=gpu_units if gpu_ids else 0)
            R.subtract(self.available, request.need)
            self.leases[lease.lease_id] = lease
            self.workers[worker_id] = LEASED
            self.worker_lease[worker_id] = lease.lease_id
            if request.for_actor:
                self.dedicated.add(worker_id)
            out.append(Grant(request.client, request.request_id, lease.lease_id, worker_id,
                             tuple(gpu_ids)))
        pool = len(self.workers) - len(self.dedicated)
        room = self.max_workers - pool - self.starting
        wanted = max(0, min(waiting_for_worker - self.starting, room))
        if waiting_for_worker - self.starting > room and not self.limit_reported:
            self.limit_reported = True
            out.append(WorkerLimitReached(
                self.max_workers, sum(1 for lease in self.leases.values() if lease.blocked)))
        wanted += max(0, waiting_for_actor - max(0, self.starting - wanted))
        if self.startup_concurrency:
            wanted = min(wanted, max(0, self.startup_concurrency - self.starting))
        for _ in range(wanted):
            self.starting += 1
            out.append(StartWorker())
        return out

    def add_total(self, extra: dict):
        """Grow the node's capacity (tests and dynamic custom resources)."""
        R.add(self.total, extra)
        R.add(self.available, extra)

    # ------------------------------------------------------------ views

    def stats(self) -> dict:
        return {
            "total": R.to_floats(self.total),
            "available": R.to_floats({k: v for k, v in self.available.items()}),
            "queued": len(self.queue),
            "leases": len(self.leases),
            "workers": len(self.workers),
            "starting": self.starting,
        }

    def check_invariants(self):
        held = {}
        for lease in self.leases.values():
            R.add(held, lease.held)
            assert all(v >= 0 for v in lease.held.values()), lease
        for name, total in self.total.items():
            assert self.available.get(name, 0) >= 0, (name, self.available)
            assert self.available.get(name, 0) + held.get(name, 0) == total, (name, self.available, held)
        assert len(self.worker_lease) == len(self.leases)
        gpu_used = [0] * len(self.gpus.free)
        for lease in self.leases.values():
            for i in lease.gpu_ids:
                gpu_used[i] += min(lease.gpu_units, R.UNIT)
        assert [R.UNIT - used for used in gpu_used] == self.gpus.free, (gpu_used, self.gpus.free)
        for worker_id, lease_id in self.worker_lease.items():
            assert self.leases[lease_id].worker_id == worker_id
            assert self.workers[worker_id] == LEASED
