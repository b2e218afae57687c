"""What an owner keeps per task and per result, by the million when a million tasks are
queued (pure twin of untracked.pyx, which keeps the same fields in objects the garbage
collector does not track).

- `TaskSpec`: a task's description from submission to its end. Each full collection walks
  every tracked one and the ~30 fields it holds (docs/benchmarks.md, "a million queued
  tasks"). Its sequences are tuples wherever the task has nothing in them (the empty tuple
  is shared), and lists only when filled.
- `Entry`: a value in the owner's memory store (core/memory_store.py), immutable once put.

Neither ever refers, through what it holds, to a TaskSpec or an Entry: a spec holds ids,
ObjectRefs, tuples and lists of them, the shape's resources and key and pickled arguments;
an entry holds its value's frames (bytes or buffers) and ids. So neither is ever part of a
reference cycle, and the compiled twins need not be tracked.
"""

from __future__ import annotations

from collections.abc import Sequence
import time
from dataclasses import dataclass

import msgpack


@dataclass(eq=False, slots=True)  # slots: one is built per task, ~40% faster
class TaskSpec:
    task_id: bytes
    function_id: bytes
    name: str
    num_returns: int
    return_ids: Sequence[bytes]
    frames: Sequence  # pickled (args, kwargs): metadata then out-of-band buffers
    top_refs: Sequence  # top-level ObjectRef arguments, resolved before running
    nested: Sequence  # [(object id, owner)] of refs nested in the arguments
    resources: dict
    key: tuple
    max_retries: int
    retry_exceptions: object
    attempt: int = 0
    resolved: Sequence = ()
    resolved_frames: Sequence = ()
    lease_id: int = 0
    cancelled: bool = False
    state: str = "resolving"  # resolving | queued | running | done
    inline: bool = False  # running on its owner's thread, blocked in get on it (no lease)
    strategy: str = "DEFAULT"
    placement_group: str = ""  # "<group hex>:<capture 0|1>", see PushTask
    generator_backpressure: int = -1
    reconstructions: int = 0  # times run again because an output was lost (lineage.py)
    lost_argument_reruns: int = 0  # times run again because an argument was lost
    args_released: bool = False  # its arguments were let go when it first finished
    lineage_pins: list | None = None  # arguments whose lineage its kept spec pins
    borrowed: Sequence = ()  # what the executing worker will hold
    runtime_env: str = ""  # canonical (runtime_env.dumps); "" for the default env
    func_name: str = ""  # Ray's func_or_class_name, for task events
    parent_task_id: bytes = b""
    events: bool = False  # records task events (task_events.py)
    event_attempt: int = -1  # the attempt's number in task events (-1: it records none)
    # Task events of a sending not reported yet (TaskSubmitter: its end, or the next batch
    # while it is still on its way, reports them); 0 / (): none waits.
    submitted_ns: int = 0
    description: tuple = ()
    finished: Finished | None = None  # its end's event, built after the push

    def __post_init__(self):
        if self.events:  # recorded from its submission, which this is (TaskSubmitter.submit)
            if self.event_attempt < 0:
                self.event_attempt = 0
            if not self.top_refs:  # its arguments are ready: its end (or a flush) says when
                self.submitted_ns = time.time_ns()

    @property
    def pinned_ids(self) -> list:
        return [ref._id for ref in self.top_refs] + [oid for oid, _ in self.nested]

    @property
    def payload(self) -> Sequence:
        """The PushTask's payload frames: the call's, then its resolved arguments'."""
        if not self.resolved_frames:
            return self.frames
        return [*self.frames, *self.resolved_frames]


class Entry:
    __slots__ = ("kind", "frames", "node_id", "size")

    def __init__(self, kind: int, frames=(), node_id: bytes = b"", size: int = 0):
        self.kind = kind
        self.frames = frames
        self.node_id = node_id
        self.size = size

    def __repr__(self):
        return f"Entry(kind={self.kind}, size={self.size})"


class Shared:
    """A value many task events hold (a kind of task's description, a lease's node and
    worker ids), which a batch sends in full once and names by number after that
    (core/task_events.py, EventStream): a tuple of atoms only (TypeError otherwise). The
    compiled twin is untracked by the garbage collector; this one is tracked."""

    __slots__ = ("value",)

    def __init__(self, value: tuple):
        if not _only_atoms(value):
            raise TypeError("Shared holds a tuple of atoms (None, bool, int, float, str, bytes)")
        self.value = value

    def __repr__(self):
        return f"Shared({self.value!r})"


class Event:
    """One task event, `(task_id, attempt, state, time_ns, extra)` on the wire (`wire()`).
    The compiled twin is not a garbage-collected type (untracked.pyx says why); this one is."""

    __slots__ = ("task_id", "attempt", "state", "ts", "extra")

    def __init__(self, task_id, attempt, state, ts, extra):
        self.task_id = task_id
        self.attempt = attempt
        self.state = state
        self.ts = ts
        self.extra = extra

    def wire(self) -> tuple:
        return (self.task_id, self.attempt, self.state, self.ts, self.extra)

    def __getitem__(self, index):
        return self.wire()[index]

    def __len__(self) -> int:
        return 5

    def __repr__(self):
        return f"Event{self.wire()!r}"


class Finished:
    """A FINISHED event that says the call's sending too: an actor call's `[sent_ns,
    description]`, or (with `submitted_ns` and `lease`) a task's `[pushed_ns, description,
    submitted_ns, lease]` (docs/protocol.md)."""

    __slots__ = ("task_id", "attempt", "ts", "sent_ns", "description", "submitted_ns", "lease")

    def __init__(self, task_id, attempt, ts, sent_ns, description, submitted_ns=0, lease=None):
        self.task_id = task_id
        self.attempt = attempt
        self.ts = ts
        self.sent_ns = sent_ns
        self.description = description
        self.submitted_ns = submitted_ns
        self.lease = lease

    def wire(self) -> tuple:
        if self.lease is None:
            extra: tuple = (self.sent_ns, self.description)
        else:
            extra = (self.sent_ns, self.description, self.submitted_ns, self.lease)
        return (self.task_id, self.attempt, 11, self.ts, extra)  # 11: FINISHED

    def __getitem__(self, index):
        return self.wire()[index]

    def __len__(self) -> int:
        return 5

    def __repr__(self):
        return f"Finished{self.wire()!r}"


def note_pushed(spec: TaskSpec, where, descriptions: dict, describe) -> bool:
    """After `spec`'s push to the lease `where`, if its submission is unreported: it gets its
    description (`descriptions` keyed as TaskSubmissionEvents.
    _description keys it; `describe(spec)` makes a missing one), its push time and lease, and
    the end event its end will stamp. False, having done nothing, if a flush reported its
    submission already."""
    if not spec.submitted_ns:
        return False
    description = spec.description
    if not description:  # () until described
        key = (spec.name, spec.func_name, spec.parent_task_id, spec.key, spec.placement_group)
        description = descriptions.get(key)
        if description is None:
            description = describe(spec)
        spec.description = description
    spec.finished = Finished(
        spec.task_id, spec.event_attempt, 0, time.time_ns(), description, spec.submitted_ns, where
    )
    return True


def record_finished(spec: TaskSpec, record) -> bool:
    """Records `spec`'s end event, built at its push, stamped now, and takes it off the spec;
    False, having done nothing, if it has none or a flush reported its sending meanwhile."""
    built = spec.finished
    if built is None or not spec.submitted_ns:
        return False
    spec.submitted_ns, spec.finished = 0, None
    built.ts = time.time_ns()
    record(built)
    return True


def call_ended(call, actor, record) -> None:
    """Records a plain actor call's end (answer_plain, after the value): FINISHED, saying the
    call's sending if no event said it yet: the event built after that sending
    (`call.finished`), stamped now, or one built now with the call's description, made now
    if the call has none (`ActorRecord.described`)."""
    sent = call.sent_ns
    if not sent:
        record(Event(call.task_id, call.attempt, 11, time.time_ns(), None))  # 11: FINISHED
        return
    call.sent_ns = 0
    prebuilt, call.finished = call.finished, None
    if prebuilt is not None and prebuilt.sent_ns == sent:  # built after this sending
        call.info = ()
        prebuilt.ts = time.time_ns()
        record(prebuilt)
        return
    record(Finished(call.task_id, call.attempt, time.time_ns(), sent, actor.described(call)))


def wire_batch(events: list, convert) -> list:
    """A batch of recorded events as the wire's tuples, in order (core/task_events.py packs
    them): an Event or Finished as its tuple; each Shared value in full (its tuple) where the
    batch first holds it and by its number after, the n-th sent in full from 0, looking one
    level into tuples and lists; any other extra (a failure's error) through `convert`
    first, which returns a list (Shared values in it numbered as above)."""
    numbers: dict = {}
    return [_wire_event(event, numbers, convert) for event in events]


def _wire_event(event, numbers: dict, convert) -> tuple:
    """One event's wire tuple, numbering in `numbers` (id -> number) the Shared values it
    sends in full. Each Shared value lives while its batch is converted."""

    def shared_wire(value):
        if type(value) is not Shared:
            return value
        number = numbers.get(id(value))
        if number is None:
            numbers[id(value)] = len(numbers)
            return value.value
        return number

    task_id, attempt, state, ts, value = event.wire() if type(event) in (Event, Finished) else event
    if value is None or type(value) in (int, bytes, str, float, bool):
        pass
    elif type(value) is Shared:
        value = shared_wire(value)
    elif type(value) is tuple:  # an end's sending: its shape kept
        value = tuple(shared_wire(item) for item in value)
    else:
        if type(value) is not list:
            value = convert(value)
        value = [shared_wire(item) for item in value]
    return (task_id, attempt, state, ts, value)


def _ready(event) -> bool:
    """Whether `event` packs without `convert`: all but a failure's error."""
    if type(event) is Finished:
        return True
    extra = event.extra if type(event) is Event else event[4]
    return extra is None or type(extra) in _READY


_READY = frozenset((int, bytes, str, float, bool, Shared, tuple, list))


def _packs(event) -> bool:
    try:
        msgpack.packb(_wire_event(event, {}, None), use_bin_type=True)
    except Exception:  # noqa: BLE001 - whatever msgpack refuses
        return False
    return True


class EventStream:
    """A batch of task events being recorded (the compiled twin packs each one as it is
    recorded, this one at `take`): the batch `take` gives is msgpack of the events' wire
    tuples (`wire_batch`), those whose extra needs `convert` (a failure's error) after the
    rest. Past `capacity` events, newer ones are dropped and counted, as is one that cannot
    be packed (or converted)."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.dropped = 0
        self._ready: list = []
        self._aside: list = []

    def __len__(self) -> int:
        return len(self._ready) + len(self._aside)

    def add(self, event) -> None:
        if len(self._ready) + len(self._aside) >= self.capacity:
            self.dropped += 1
        elif not _ready(event):
            self._aside.append(event)
        elif _packs(event):  # as the compiled twin finds when it writes the event at once
            self._ready.append(event)
        else:
            self.dropped += 1

    def take(self, convert) -> tuple:
        """(the batch as msgpack bytes, events dropped since the last take); a new batch
        begins."""
        ready, self._ready = self._ready, []
        aside, self._aside = self._aside, []
        dropped, self.dropped = self.dropped, 0
        try:
            return msgpack.packb(wire_batch(ready + aside, convert), use_bin_type=True), dropped
        except Exception:  # noqa: BLE001 - some event cannot be packed: find it, keep the rest
            pass
        numbers: dict = {}
        wire = []
        for event in ready + aside:
            trial = dict(numbers)
            try:
                one = _wire_event(event, trial, convert)
                msgpack.packb(one, use_bin_type=True)
            except Exception:  # noqa: BLE001 - a batch is not lost for one event
                dropped += 1
                continue
            numbers = trial
            wire.append(one)
        return msgpack.packb(wire, use_bin_type=True), dropped


class Runs:
    """The runs in progress in an executing process (task id -> (attempt, start ns)), which a
    flush reports as RUNNING while they last, and each run's one event when it ends
    (`[task_id, attempt, RUNNING, start, end]`), written to `stream`."""

    def __init__(self, stream: EventStream, state: int):
        self.running: dict = {}
        self._stream = stream
        self._state = state  # RUNNING's number

    def started(self, task_id: bytes, attempt: int) -> int:
        """Notes a run starting now; returns its start (ns)."""
        start = time.time_ns()
        self.running[task_id] = (attempt, start)
        return start

    def ended(self, task_id: bytes, attempt: int, start: int, end: int = 0) -> None:
        """Records the run's event; `end`: when it ended, if that was before this call
        (taken before the answer left, recorded after it)."""
        self.running.pop(task_id, None)
        self._stream.add(Event(task_id, attempt, self._state, start, end or time.time_ns()))


def untrack(value) -> None:
    """Pure Python cannot stop the collector tracking an object: it keeps walking it."""


def untracked_tuple(value: tuple) -> tuple:
    """`value`. The compiled twin stops the garbage collector tracking it at once when it
    holds only atoms and such tuples; Python cannot, so here the collector stops at its next
    look at it, if it sees the tuples within first."""
    return value


def _only_atoms(value: tuple) -> bool:
    for item in value:
        if type(item) is tuple:
            if not _only_atoms(item):
                return False
        elif item is not None and type(item) not in _ATOMS:
            return False
    return True


_ATOMS = frozenset((bool, int, float, str, bytes, Shared))
