# cython: language_level=3
"""What an owner keeps per task and per result (compiled twin of _untracked_py.py, which says
why): the same fields, in objects the garbage collector does not track (`no_gc`), so a full
collection while a million tasks are queued (or their results wait) does not walk them.
Safe because neither ever refers back to a TaskSpec or an Entry through what it holds: they
are never part of a reference cycle, and what they hold stays reachable for the collector
through them (an untracked container counts as a reference from outside)."""

cimport cython

cdef extern from "Python.h":
    int PyObject_GC_IsTracked(object op)
    void PyObject_GC_UnTrack(void *op)


@cython.no_gc
@cython.final
cdef class TaskSpec:
    cdef public object task_id, function_id, name, num_returns, return_ids, frames
    cdef public object top_refs, nested, resources, key, max_retries, retry_exceptions
    cdef public object attempt, resolved, resolved_frames, lease_id, cancelled, state
    cdef public object inline, strategy, placement_group, generator_backpressure
    cdef public object reconstructions, lost_argument_reruns, args_released, lineage_pins
    cdef public object borrowed, runtime_env, func_name, parent_task_id, events
    cdef public object event_attempt, submitted_ns, pushed_ns, pushed_to, description

    def __init__(
        self,
        task_id,
        function_id,
        name,
        num_returns,
        return_ids,
        frames,
        top_refs,
        nested,
        resources,
        key,
        max_retries,
        retry_exceptions,
        attempt=0,
        resolved=(),
        resolved_frames=(),
        lease_id=0,
        cancelled=False,
        state="resolving",
        inline=False,
        strategy="DEFAULT",
        placement_group="",
        generator_backpressure=-1,
        reconstructions=0,
        lost_argument_reruns=0,
        args_released=False,
        lineage_pins=None,
        borrowed=(),
        runtime_env="",
        func_name="",
        parent_task_id=b"",
        events=False,
        event_attempt=-1,
    ):
        self.task_id = task_id
        self.function_id = function_id
        self.name = name
        self.num_returns = num_returns
        self.return_ids = return_ids
        self.frames = frames
        self.top_refs = top_refs
        self.nested = nested
        self.resources = resources
        self.key = key
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.attempt = attempt
        self.resolved = resolved
        self.resolved_frames = resolved_frames
        self.lease_id = lease_id
        self.cancelled = cancelled
        self.state = state
        self.inline = inline
        self.strategy = strategy
        self.placement_group = placement_group
        self.generator_backpressure = generator_backpressure
        self.reconstructions = reconstructions
        self.lost_argument_reruns = lost_argument_reruns
        self.args_released = args_released
        self.lineage_pins = lineage_pins
        self.borrowed = borrowed
        self.runtime_env = runtime_env
        self.func_name = func_name
        self.parent_task_id = parent_task_id
        self.events = events
        self.event_attempt = event_attempt
        # Task events of a sending not reported yet (TaskSubmitter: its end, or the next
        # batch while it is still on its way, reports them); 0 / (): none waits.
        self.submitted_ns = 0
        self.pushed_ns = 0
        self.pushed_to = ()
        self.description = ()

    @property
    def pinned_ids(self):
        return [ref._id for ref in self.top_refs] + [oid for oid, _ in self.nested]

    @property
    def payload(self):
        """The PushTask's payload frames: the call's, then its resolved arguments'."""
        if not self.resolved_frames:
            return self.frames
        return [*self.frames, *self.resolved_frames]

    def __repr__(self):
        return f"TaskSpec(task_id={self.task_id!r}, name={self.name!r}, state={self.state!r})"


@cython.no_gc
@cython.final
cdef class Entry:
    cdef public object kind, frames, node_id, size

    def __init__(self, kind, frames=(), node_id=b"", size=0):
        self.kind = kind
        self.frames = frames
        self.node_id = node_id
        self.size = size

    def __repr__(self):
        return f"Entry(kind={self.kind}, size={self.size})"



@cython.no_gc
@cython.final
cdef class Shared:
    """A value many task events hold (a kind of task's description, a lease's node and
    worker ids), which a batch sends in full once and names by number after that
    (core/task_events.py, pack_batch). Untracked: it holds a tuple of atoms only, checked
    (TypeError otherwise), so it is never part of a reference cycle."""

    cdef public tuple value

    def __init__(self, tuple value):
        if not _only_atoms(value):
            raise TypeError("Shared holds a tuple of atoms (None, bool, int, float, str, bytes)")
        self.value = untracked_tuple(value)

    def __repr__(self):
        return f"Shared({self.value!r})"



# Task events (core/task_events.py): what each process records on the hot path of every task.
# A recorded tuple counted toward the collector's next young collection until its batch left
# (allocating any tracked object does, untracked or not): a second's worth, 20,000 and more,
# set off young collections every few hundred tasks, and through them full ones, which
# stalled the pipeline of tasks (events cost async tasks 11-16% with the collector on, 2%
# with it held off, fresh clusters). These are not garbage-collected types at all. They hold
# atoms, Shared values and untracked tuples only, so they are never part of a cycle.

@cython.no_gc
@cython.final
cdef class Event:
    """One task event, `(task_id, attempt, state, time_ns, extra)` on the wire (`wire()`)."""

    cdef public object task_id, attempt, state, ts, extra

    def __init__(self, task_id, attempt, state, ts, extra):
        self.task_id = task_id
        self.attempt = attempt
        self.state = state
        self.ts = ts
        self.extra = extra

    def wire(self):
        return (self.task_id, self.attempt, self.state, self.ts, self.extra)

    def __getitem__(self, index):
        return self.wire()[index]

    def __len__(self):
        return 5

    def __repr__(self):
        return f"Event{self.wire()!r}"


@cython.no_gc
@cython.final
cdef class Finished:
    """A FINISHED event that says the call's sending too: an actor call's `[sent_ns,
    description]`, or (with `submitted_ns` and `lease`) a task's `[pushed_ns, description,
    submitted_ns, lease]` (docs/protocol.md)."""

    cdef public object task_id, attempt, ts, sent_ns, description, submitted_ns, lease

    def __init__(self, task_id, attempt, ts, sent_ns, description, submitted_ns=0, lease=None):
        self.task_id = task_id
        self.attempt = attempt
        self.ts = ts
        self.sent_ns = sent_ns
        self.description = description
        self.submitted_ns = submitted_ns
        self.lease = lease

    def wire(self):
        if self.lease is None:
            extra = (self.sent_ns, self.description)
        else:
            extra = (self.sent_ns, self.description, self.submitted_ns, self.lease)
        return (self.task_id, self.attempt, 11, self.ts, extra)  # 11: FINISHED

    def __getitem__(self, index):
        return self.wire()[index]

    def __len__(self):
        return 5

    def __repr__(self):
        return f"Finished{self.wire()!r}"



def wire_batch(list events, convert):
    """A batch of recorded events as the wire's tuples, in order (core/task_events.py packs
    them): an Event or Finished as its tuple; each Shared value in full (its tuple) where the
    batch first holds it and by its number after, the n-th sent in full from 0, looking one
    level into tuples and lists; any other extra (a failure's error) through `convert`
    first, which returns a list (Shared values in it numbered as above)."""
    cdef dict numbers = {}
    cdef list out = []
    cdef object event, kind, extra
    cdef Finished end
    cdef Event one
    for event in events:
        kind = type(event)
        if kind is Finished:  # most of a batch: its wire tuple built at once
            end = <Finished>event
            if end.lease is None:
                extra = (end.sent_ns, _shared_wire(end.description, numbers))
            else:
                extra = (
                    end.sent_ns,
                    _shared_wire(end.description, numbers),
                    end.submitted_ns,
                    _shared_wire(end.lease, numbers),
                )
            out.append((end.task_id, end.attempt, 11, end.ts, extra))  # 11: FINISHED
        elif kind is Event:
            one = <Event>event
            out.append(
                (one.task_id, one.attempt, one.state, one.ts, _extra_wire(one.extra, numbers, convert))
            )
        else:
            out.append(event[:4] + (_extra_wire(event[4], numbers, convert),))
    return out


cdef object _shared_wire(object value, dict numbers):
    cdef object number
    if type(value) is not Shared:
        return value
    # Keyed by the object itself (Shared compares by identity): each lives while the batch
    # is converted.
    number = numbers.get(value)
    if number is None:
        numbers[value] = len(numbers)
        return (<Shared>value).value
    return number


cdef object _extra_wire(object extra, dict numbers, object convert):
    cdef object kind = type(extra)
    if extra is None or kind is int or kind is bytes or kind is str or kind is float or kind is bool:
        return extra
    if kind is Shared:
        return _shared_wire(extra, numbers)
    if kind is tuple:  # an end's sending: its shape kept
        return tuple([_shared_wire(item, numbers) for item in extra])
    if kind is not list:
        extra = convert(extra)
    return [_shared_wire(item, numbers) for item in extra]


def untracked_tuple(tuple value):
    """`value`; if it holds only atoms (None, bool, int, float, str, bytes, Shared) and such
    tuples, which can never be part of a reference cycle, the garbage collector stops
    tracking it (and the tuples within) now. The collector would do so at a look at its
    generation, but only if it saw the tuples within untracked first, and it looks at a tuple
    held by only another one after that other (its walk from the outside in reorders them):
    an event holding a tuple stays tracked, into the oldest generation, until a full
    collection. A tuple already untracked counts as an atom (the collector untracked it, or
    this did)."""
    if _only_atoms(value):
        _untrack(value)
    return value


cdef bint _only_atoms(tuple value):
    for item in value:
        if type(item) is tuple:
            if PyObject_GC_IsTracked(item) and not _only_atoms(<tuple>item):
                return False
        elif item is not None and type(item) not in _ATOMS:
            return False
    return True


cdef void _untrack(tuple value):
    for item in value:
        if type(item) is tuple and PyObject_GC_IsTracked(item):
            _untrack(<tuple>item)
    if PyObject_GC_IsTracked(value):
        PyObject_GC_UnTrack(<void *>value)


_ATOMS = frozenset((bool, int, float, str, bytes, Shared))
