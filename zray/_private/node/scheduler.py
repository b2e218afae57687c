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
from typing import Union

from zray._private.common import bundles as B
from zray._private.common import resources as R
from zray._private.node.instances import GPU, GpuInstances

CPU = "CPU"


# ---------------------------------------------------------------- instructions


@dataclass(frozen=True)
class Grant:
    client: bytes
    request_id: int
    lease_id: int
    worker_id: bytes
    gpu_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Infeasible:
    client: bytes
    request_id: int
    need: R.Units


@dataclass(frozen=True)
class StartWorker:
    runtime_env: str = ""  # the env the worker is set up for ("": the default env)


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


Instruction = Union[Grant, Infeasible, StartWorker, StopWorker, WorkerLimitReached, LeaseLost]


# ---------------------------------------------------------------- state

BundleKey = tuple[bytes, int]  # (placement group id, bundle index)


@dataclass
class Request:
    client: bytes
    request_id: int
    need: R.Units
    for_actor: bool = False
    reported_infeasible: bool = False
    runtime_env: str = ""


@dataclass
class Lease:
    lease_id: int
    client: bytes
    worker_id: bytes
    need: R.Units
    held: R.Units
    owed: R.Units = field(default_factory=dict)
    blocked: bool = False
    gpu_ids: tuple[int, ...] = ()  # which GPUs (instances.GpuInstances) the lease holds ...
    gpu_units: int = 0  # ... and how much of each (all of it for whole amounts)
    gpu_bundle: BundleKey | tuple[()] = ()  # the bundle whose GPUs they are, if any; ...
    gpu_local: tuple[int, ...] = ()  # ... gpu_ids are then these positions of its own GPUs


@dataclass
class Bundle:
    """A placement group bundle on this node: reserved (prepared), then committed. A bundle
    with GPUs holds particular GPUs of the node, and hands them out to the leases in it."""

    units: R.Units
    committed: bool = False
    gpu_ids: list[int] = field(default_factory=list)
    gpus: GpuInstances | None = None


# What _assign_gpus finds for a request: the Lease fields gpu_ids, gpu_units, gpu_bundle, gpu_local.
GpuAssignment = tuple[list[int], int, Union[BundleKey, tuple[()]], tuple[int, ...]]

IDLE, LEASED, STARTING, STOPPING = "idle", "leased", "starting", "stopping"


class LocalScheduler:
    def __init__(
        self,
        total: R.Units,
        min_workers: int,
        max_extra_workers: int = 32,
        first_lease_id: int = 1,
        startup_concurrency: int = 0,
    ) -> None:
        self.total = dict(total)
        self.available = dict(total)
        self.min_workers = min_workers
        self.max_workers = max(min_workers, 1) + max_extra_workers
        self.gpus = GpuInstances(self.total.get(GPU, 0))
        self.queue: OrderedDict[tuple[bytes, int], Request] = OrderedDict()  # (client, request id)
        self.leases: dict[int, Lease] = {}
        self.workers: dict[bytes, str] = {}  # worker_id -> IDLE | LEASED
        self.dedicated: set[bytes] = set()  # workers hosting actors: outside the pool's cap
        self.worker_lease: dict[bytes, int] = {}
        self.starting = 0
        self.limit_reported = False
        self.bundles: dict[BundleKey, Bundle] = {}  # (placement group id, index) -> bundle
        # Workers starting at once, beyond the initial ones (0: no bound), as Ray's
        # maximum_startup_concurrency: a thousand actors asked at once forked a thousand
        # workers together, and on two cores many missed their registration deadline.
        self.startup_concurrency = startup_concurrency
        self._lease_ids = itertools.count(first_lease_id)
        # Workers are pooled per runtime env (a worker set up for one env never runs another
        # env's task). Only non-default envs are recorded, so the default path pays nothing.
        self.worker_env: dict[bytes, str] = {}
        self.starting_env: dict[str, int] = {}  # of self.starting, those for non-default envs

    # ------------------------------------------------------------ events

    def start(self) -> list[Instruction]:
        self.starting += self.min_workers
        return [StartWorker() for _ in range(self.min_workers)]

    def request_lease(
        self,
        client: bytes,
        request_id: int,
        need: R.Units,
        for_actor: bool = False,
        runtime_env: str = "",
    ) -> list[Instruction]:
        """`for_actor`: the worker will be dedicated to an actor for its lifetime, so it does
        not count against the pool's cap (every actor needs a process of its own, as in Ray).
        `runtime_env`: only a worker set up for this env may take the lease."""
        self.queue[(client, request_id)] = Request(
            client, request_id, dict(need), for_actor, runtime_env=runtime_env
        )
        return self._schedule()

    def cancel_request(self, client: bytes, request_id: int) -> list[Instruction]:
        self.queue.pop((client, request_id), None)
        return []

    def return_lease(self, lease_id: int, kill_worker: bool = False) -> list[Instruction]:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return []
        out: list[Instruction] = []
        self._release(lease)
        del self.worker_lease[lease.worker_id]
        if kill_worker:
            out.append(StopWorker(lease.worker_id))
        else:
            self.workers[lease.worker_id] = IDLE
        return out + self._schedule()

    def worker_started(self, worker_id: bytes, runtime_env: str = "") -> list[Instruction]:
        self._started(runtime_env)
        self.workers[worker_id] = IDLE
        if runtime_env:
            self.worker_env[worker_id] = runtime_env
        return self._schedule()

    def worker_start_failed(self, runtime_env: str = "") -> list[Instruction]:
        self._started(runtime_env)
        return self._schedule()

    def _started(self, runtime_env: str) -> None:
        self.starting = max(0, self.starting - 1)
        if runtime_env:
            left = self.starting_env.get(runtime_env, 0) - 1
            if left > 0:
                self.starting_env[runtime_env] = left
            else:
                self.starting_env.pop(runtime_env, None)

    def worker_exited(self, worker_id: bytes) -> list[Instruction]:
        state = self.workers.pop(worker_id, None)
        self.dedicated.discard(worker_id)
        self.worker_env.pop(worker_id, None)
        out: list[Instruction] = []
        lease_id = self.worker_lease.pop(worker_id, None)
        if lease_id is not None:
            lease = self.leases.pop(lease_id)
            self._release(lease)
            out.append(LeaseLost(lease.client, lease_id, worker_id))
        if state is not None and len(self.workers) + self.starting < self.min_workers:
            self.starting += 1
            out.append(StartWorker())
        return out + self._schedule()

    def client_exited(self, client: bytes) -> list[Instruction]:
        for key in [k for k in self.queue if k[0] == client]:
            del self.queue[key]
        out: list[Instruction] = []
        for lease in [l for l in self.leases.values() if l.client == client]:
            # The worker may be mid-task for an owner that is gone: stop it rather than reuse.
            out += self.return_lease(lease.lease_id, kill_worker=True)
        return out + self._schedule()

    def resize_lease(self, lease_id: int, need: R.Units) -> list[Instruction]:
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
        if not any(name == GPU or name.startswith(GPU + "_group_") for name in need):
            self._release_gpus(lease)  # a partial shrink keeps its GPUs: none happens today
        return self._schedule()

    def set_blocked(self, worker_id: bytes, blocked: bool) -> list[Instruction]:
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

    # ------------------------------------------------------------ placement group bundles

    def prepare_bundles(self, pg_id: bytes, bundles: list[tuple[int, R.Units]]) -> bool:
        """Reserves every bundle of `bundles` ([(index, units)]) or none (phase one of the
        head's two-phase reservation). Asking again for a bundle held already is a yes."""
        fresh = [(i, units) for i, units in bundles if (pg_id, i) not in self.bundles]
        need: R.Units = {}
        for _, units in fresh:
            R.add(need, units)
        if not R.fits(need, self.available):
            return False
        made: list[Bundle] = []
        for index, units in fresh:
            bundle = Bundle(dict(units))
            gpu_units = units.get(GPU, 0)
            if gpu_units:
                ids = self.gpus.assign(gpu_units)
                if ids is None:  # enough GPU in total, but spread over too many GPUs
                    for earlier in made:
                        self.gpus.release(earlier.gpu_ids, earlier.units[GPU])
                    return False
                bundle.gpu_ids = ids
                bundle.gpus = GpuInstances(0)
                bundle.gpus.free = [R.UNIT] * len(ids) if gpu_units >= R.UNIT else [gpu_units]
            made.append(bundle)
        R.subtract(self.available, need)
        for (index, _), bundle in zip(fresh, made):
            self.bundles[(pg_id, index)] = bundle
        return True

    def commit_bundles(self, pg_id: bytes, indices: list[int]) -> list[Instruction]:
        """Phase two: the reservation becomes the group's named resources (bundles.py)."""
        for index in indices:
            bundle = self.bundles.get((pg_id, index))
            if bundle is None or bundle.committed:
                continue
            bundle.committed = True
            named = B.committed_units(pg_id.hex(), index, bundle.units)
            R.add(self.total, named)
            R.add(self.available, named)
        return self._schedule()

    def return_bundles(self, pg_id: bytes, indices: list[int]) -> list[Instruction]:
        """Cancels a reservation or gives committed bundles back. As in Ray, every worker
        leased with this group's resources here is stopped first (its holder hears the
        worker died), so what the bundles lent is all back before they go."""
        pg_hex = pg_id.hex()
        out: list[Instruction] = []
        for lease in [
            lease
            for lease in self.leases.values()
            if any(B.group_of(name) == pg_hex for name in lease.need)
        ]:
            out.append(LeaseLost(lease.client, lease.lease_id, lease.worker_id))
            self.leases.pop(lease.lease_id)
            self._release(lease)
            del self.worker_lease[lease.worker_id]
            self.workers[lease.worker_id] = STOPPING  # never handed out again
            out.append(StopWorker(lease.worker_id))
        for index in indices:
            bundle = self.bundles.pop((pg_id, index), None)
            if bundle is None:
                continue
            if bundle.committed:
                for name, amount in B.committed_units(pg_hex, index, bundle.units).items():
                    for table in (self.total, self.available):
                        left = table.get(name, 0) - amount
                        if left:
                            table[name] = left
                        else:
                            table.pop(name, None)
            R.add(self.available, bundle.units)
            if bundle.gpu_ids:
                self.gpus.release(bundle.gpu_ids, bundle.units[GPU])
        return out + self._schedule()

    # ------------------------------------------------------------ internals

    def _release(self, lease: Lease) -> None:
        R.add(self.available, lease.held)
        self._release_gpus(lease)

    def _release_gpus(self, lease: Lease) -> None:
        if lease.gpu_bundle:
            bundle = self.bundles.get(lease.gpu_bundle)
            if bundle is not None:
                assert bundle.gpus is not None  # _assign_gpus took the lease's GPUs from them
                bundle.gpus.release(list(lease.gpu_local), lease.gpu_units)
        elif lease.gpu_ids:
            self.gpus.release(list(lease.gpu_ids), lease.gpu_units)
        lease.gpu_ids, lease.gpu_units, lease.gpu_bundle, lease.gpu_local = (), 0, (), ()

    def _assign_gpus(self, need: R.Units) -> GpuAssignment | None:
        """(gpu ids, units, bundle key, positions in the bundle) for a request, or None when
        its GPUs are not free as whole instances. A request in a bundle gets the bundle's."""
        units = need.get(GPU, 0)
        if units:
            ids = self.gpus.assign(units)
            return None if ids is None else (ids, units, (), ())
        parsed = [B.group_and_index(name) for name in need if name.startswith(GPU + "_group_")]
        if not parsed:
            return [], 0, (), ()
        pg_hex, index = max(parsed, key=lambda p: p[1])  # an indexed name picks the bundle
        assert pg_hex is not None, need  # GPU_group_ names are bundles.py's
        amount = need[
            B.indexed_name(GPU, index, pg_hex) if index >= 0 else B.wildcard_name(GPU, pg_hex)
        ]
        for key in sorted(
            k for k in self.bundles if k[0].hex() == pg_hex and (index < 0 or k[1] == index)
        ):
            bundle = self.bundles[key]
            local = bundle.gpus.assign(amount) if bundle.gpus is not None else None
            if local:
                return [bundle.gpu_ids[j] for j in local], amount, key, tuple(local)
        return None

    def _repay_debts(self) -> None:
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

    def _schedule(self) -> list[Instruction]:
        self._repay_debts()
        out: list[Instruction] = []
        idle = [w for w, state in self.workers.items() if state == IDLE]
        idle_by_env: dict[str, list[bytes]] = {"": idle}
        if self.worker_env:
            idle_by_env = {}
            for worker_id in idle:
                idle_by_env.setdefault(self.worker_env.get(worker_id, ""), []).append(worker_id)
        waiting: dict[str, list[int]] = {}  # env -> [requests waiting for a worker, for an actor]
        # What requests waiting for a worker may claim: each that fits takes its share, so a
        # node never starts more workers than its free resources can run (ten owners' lease
        # requests for 1 CPU on a node with 2 free CPUs start two workers, not ten).
        unclaimed = dict(self.available)
        for key, request in list(self.queue.items()):
            if not R.fits(request.need, self.total):
                if not request.reported_infeasible:
                    request.reported_infeasible = True
                    out.append(Infeasible(request.client, request.request_id, request.need))
                continue
            if not R.fits(request.need, self.available):
                continue
            idle = idle_by_env.get(request.runtime_env, [])
            if not idle:
                if R.fits(request.need, unclaimed):
                    R.subtract(unclaimed, request.need)
                    waiting.setdefault(request.runtime_env, [0, 0])[request.for_actor] += 1
                continue
            gpus = self._assign_gpus(request.need)
            if gpus is None:
                continue  # enough GPU in total, but spread over too many GPUs
            gpu_ids, gpu_units, gpu_bundle, gpu_local = gpus
            worker_id = idle.pop()
            del self.queue[key]
            lease = Lease(
                next(self._lease_ids),
                request.client,
                worker_id,
                request.need,
                dict(request.need),
                gpu_ids=tuple(gpu_ids),
                gpu_units=gpu_units if gpu_ids else 0,
                gpu_bundle=gpu_bundle,
                gpu_local=gpu_local,
            )
            R.subtract(self.available, request.need)
            R.subtract(unclaimed, request.need)
            self.leases[lease.lease_id] = lease
            self.workers[worker_id] = LEASED
            self.worker_lease[worker_id] = lease.lease_id
            if request.for_actor:
                self.dedicated.add(worker_id)
            out.append(
                Grant(request.client, request.request_id, lease.lease_id, worker_id, tuple(gpu_ids))
            )
        pool = len(self.workers) - len(self.dedicated)
        room = self.max_workers - pool - self.starting
        budget = (
            max(0, self.startup_concurrency - self.starting) if self.startup_concurrency else None
        )
        for env, (for_worker, for_actor) in waiting.items():
            starting = (
                self.starting_env.get(env, 0)
                if env
                else self.starting - sum(self.starting_env.values())
            )
            wanted = max(0, min(for_worker - starting, room))
            short = for_worker - starting - wanted
            if short > 0:
                evicted = self._evict_idle(env, idle_by_env, short)
                out += evicted
                if len(evicted) < short and not self.limit_reported:
                    self.limit_reported = True
                    out.append(
                        WorkerLimitReached(
                            self.max_workers,
                            sum(1 for lease in self.leases.values() if lease.blocked),
                        )
                    )
            room -= wanted
            wanted += max(0, for_actor - max(0, starting - wanted))
            if budget is not None:
                wanted = min(wanted, budget)
                budget -= wanted
            self.starting += wanted
            if env and wanted:
                self.starting_env[env] = self.starting_env.get(env, 0) + wanted
            out += [StartWorker(env)] * wanted
        return out

    def _evict_idle(
        self, env: str, idle_by_env: dict[str, list[bytes]], count: int
    ) -> list[Instruction]:
        """At the pool's cap, idle workers of other envs make room for `env`'s (as Ray's
        worker pool kills idle workers of other runtime envs)."""
        out: list[Instruction] = []
        for other, idle in idle_by_env.items():
            while other != env and idle and len(out) < count:
                worker_id = idle.pop()
                self.workers[worker_id] = STOPPING
                out.append(StopWorker(worker_id))
        return out

    def add_total(self, extra: R.Units) -> None:
        """Grow the node's capacity (tests and dynamic custom resources)."""
        R.add(self.total, extra)
        R.add(self.available, extra)

    # ------------------------------------------------------------ views

    def stats(self) -> dict[str, object]:
        return {
            "total": R.to_floats(self.total),
            "available": R.to_floats({k: v for k, v in self.available.items()}),
            "queued": len(self.queue),
            "leases": len(self.leases),
            "workers": len(self.workers),
            "starting": self.starting,
        }

    def check_invariants(self) -> None:
        held: R.Units = {}
        for lease in self.leases.values():
            R.add(held, lease.held)
            assert all(v >= 0 for v in lease.held.values()), lease
        for bundle in self.bundles.values():  # reserved out of the node's own resources
            R.add(held, bundle.units)
        for name, total in self.total.items():
            assert self.available.get(name, 0) >= 0, (name, self.available)
            assert self.available.get(name, 0) + held.get(name, 0) == total, (
                name,
                self.available,
                held,
            )
        assert len(self.worker_lease) == len(self.leases)
        gpu_used = [0] * len(self.gpus.free)
        for lease in self.leases.values():
            if not lease.gpu_bundle:
                for i in lease.gpu_ids:
                    gpu_used[i] += min(lease.gpu_units, R.UNIT)
        for bundle in self.bundles.values():
            for i in bundle.gpu_ids:
                gpu_used[i] += min(bundle.units[GPU], R.UNIT)
        assert [R.UNIT - used for used in gpu_used] == self.gpus.free, (gpu_used, self.gpus.free)
        for worker_id, lease_id in self.worker_lease.items():
            assert self.leases[lease_id].worker_id == worker_id
            assert self.workers[worker_id] == LEASED
