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


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clock, timespec *now)
    int CLOCK_REALTIME


cdef inline long long _now_ns():
    """time.time_ns(), without making an int object of it."""
    cdef timespec now
    clock_gettime(CLOCK_REALTIME, &now)
    return <long long>now.tv_sec * 1000000000 + now.tv_nsec


@cython.no_gc
@cython.final
cdef class TaskSpec:
    cdef public object task_id, function_id, name, num_returns, return_ids, frames
    cdef public object top_refs, nested, resources, key, max_retries, retry_exceptions
    cdef public object attempt, resolved, resolved_frames, lease_id, cancelled, state
    cdef public object inline, strategy, placement_group, generator_backpressure
    cdef public object reconstructions, lost_argument_reruns, args_released, lineage_pins
    cdef public object borrowed, runtime_env, func_name, parent_task_id, events
    cdef public object event_attempt, submitted_ns, description
    cdef public object finished

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
        if events:  # recorded from its submission, which this is (TaskSubmitter.submit)
            if event_attempt < 0:
                self.event_attempt = 0
            if not top_refs:  # its arguments are ready: its end (or a flush) says when
                self.submitted_ns = _now_ns()
        self.description = ()
        # Its end's event, built after the push (off a sync call's round trip): the end only
        # stamps and records it (TaskSubmitter._record_end).
        self.finished = None

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
    (core/task_events.py, EventStream). Untracked: it holds a tuple of atoms only, checked
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

    # The times as C integers: a second's worth of ends waits for its batch, and three int
    # objects each were most of what they held.
    cdef public object task_id, attempt, description, lease
    cdef public long long ts, sent_ns, submitted_ns

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





def note_pushed(TaskSpec spec, where, dict descriptions, describe):
    """After `spec`'s push to the lease `where` (Shared node and worker ids), if its
    submission is unreported: it gets its description
    (`descriptions` keyed as TaskSubmissionEvents._description keys it; `describe(spec)`
    makes a missing one), its push time and lease, and the end event its end will stamp
    (record_finished). False, having done nothing, if a flush reported its submission
    already. Compiled: per task, on the submitter's thread (async tasks pay it in full)."""
    cdef object description
    cdef Finished built
    if not spec.submitted_ns:
        return False
    description = spec.description
    if not description:  # () until described
        description = descriptions.get(
            (spec.name, spec.func_name, spec.parent_task_id, spec.key, spec.placement_group)
        )
        if description is None:
            description = describe(spec)
        spec.description = description
    built = Finished.__new__(Finished)
    built.task_id = spec.task_id
    built.attempt = spec.event_attempt
    built.ts = 0
    built.sent_ns = _now_ns()
    built.description = description
    built.submitted_ns = spec.submitted_ns
    built.lease = where
    spec.finished = built
    return True


def record_finished(TaskSpec spec, record):
    """Records `spec`'s end event, built at its push, stamped now (time.time_ns's clock), and
    takes it off the spec; False, having done nothing, if it has none or a flush reported
    its sending meanwhile (TaskSubmitter._record_end records its end then). On a sync
    call's round trip: a field test, a clock read and an append."""
    cdef object built = spec.finished
    if built is None or not spec.submitted_ns:
        return False
    spec.submitted_ns = 0
    spec.finished = None
    (<Finished>built).ts = _now_ns()
    record(built)
    return True


def call_ended(call, actor, record):
    """Records a plain actor call's end (answer_plain, after the value; compiled: an async
    call pays it on the answering thread): FINISHED, saying the call's sending if no event
    said it yet: the event built after that sending (`call.finished`), stamped now, or one
    built now with the call's description, made now if the call has none
    (`ActorRecord.described`: the actor's `infos` by (method, parent task id), else
    `actor.info`)."""
    cdef object sent = call.sent_ns
    cdef object info
    cdef Finished built
    if not sent:
        record(Event(call.task_id, call.attempt, 11, _now_ns(), None))  # 11: FINISHED
        return
    call.sent_ns = 0
    prebuilt = call.finished
    if prebuilt is not None:
        call.finished = None
        if (<Finished>prebuilt).sent_ns == sent:  # built after this sending
            call.info = ()
            (<Finished>prebuilt).ts = _now_ns()
            record(prebuilt)
            return
    info = call.info
    call.info = ()
    if info is None:
        info = actor.infos.get((call.method, call.parent_task_id))
        if info is None:
            info = actor.info(call.method, call.parent_task_id)
    elif not info:
        info = None  # an earlier event carried it
    built = Finished.__new__(Finished)
    built.task_id = call.task_id
    built.attempt = call.attempt
    built.ts = _now_ns()
    built.sent_ns = sent
    built.description = info
    built.submitted_ns = 0
    built.lease = None
    record(built)


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


def untrack(value):
    """Stop the garbage collector tracking `value`, whose caller knows it can never be part
    of a reference cycle (an ObjectRef: an id and an owner's address). A driver holding a
    million refs to queued tasks then has no full collection walk them. Every instance of a
    class written in Python is tracked from birth, however little it holds."""
    PyObject_GC_UnTrack(<void *>value)


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


# ------------------------------------------------------------------ a batch straight to bytes
# `EventStream`: what msgpack.packb(wire_batch(events, convert), use_bin_type=True) gives,
# written event by event as they are recorded, without the wire tuples in between. The formats
# are msgpack's smallest, as msgpack's packer chooses them; anything else in an event goes
# through msgpack itself.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong
from cpython.unicode cimport PyUnicode_AsUTF8String
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy


cdef struct _Out:
    char *data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _room(_Out *out, Py_ssize_t more) except -1:
    cdef Py_ssize_t capacity
    cdef char *grown
    if out.size + more <= out.capacity:
        return 0
    capacity = max(2 * out.capacity, out.size + more, 65536)
    grown = <char *>realloc(out.data, capacity)
    if grown == NULL:
        raise MemoryError()
    out.data, out.capacity = grown, capacity
    return 0


cdef int _head(_Out *out, unsigned char code, uint64_t value, int width) except -1:
    """`code`, then `value` big-endian in `width` bytes (0: the code alone)."""
    cdef int i
    _room(out, 1 + width)
    out.data[out.size] = <char>code
    for i in range(width):
        out.data[out.size + 1 + i] = <char>((value >> (8 * (width - 1 - i))) & 0xFF)
    out.size += 1 + width
    return 0


cdef int _raw(_Out *out, const char *data, Py_ssize_t n) except -1:
    _room(out, n)
    memcpy(out.data + out.size, data, n)
    out.size += n
    return 0


cdef int _int(_Out *out, object value) except -1:
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow > 0:  # past int64: uint64, or OverflowError as msgpack's
        return _head(out, 0xCF, PyLong_AsUnsignedLongLong(value), 8)
    if overflow < 0:
        raise OverflowError("an integer below -2**63 cannot be packed")
    return _int64(out, v)


cdef int _int64(_Out *out, long long v) except -1:
    cdef uint64_t u
    if v >= 0:
        u = <uint64_t>v
        if u < 0x80:
            return _head(out, <unsigned char>u, 0, 0)
        if u <= 0xFF:
            return _head(out, 0xCC, u, 1)
        if u <= 0xFFFF:
            return _head(out, 0xCD, u, 2)
        if u <= 0xFFFFFFFF:
            return _head(out, 0xCE, u, 4)
        return _head(out, 0xCF, u, 8)
    if v >= -32:
        return _head(out, <unsigned char>(v & 0xFF), 0, 0)
    if v >= -0x80:
        return _head(out, 0xD0, <uint64_t>v & 0xFF, 1)
    if v >= -0x8000:
        return _head(out, 0xD1, <uint64_t>v & 0xFFFF, 2)
    if v >= -0x80000000:
        return _head(out, 0xD2, <uint64_t>v & 0xFFFFFFFF, 4)
    return _head(out, 0xD3, <uint64_t>v, 8)


cdef int _sized(_Out *out, Py_ssize_t n, unsigned char fix, Py_ssize_t fix_limit,
                unsigned char one, unsigned char two, unsigned char four) except -1:
    """The header of a string, binary or array of `n` items (`one` 0: no 8-bit form)."""
    if n < fix_limit:
        return _head(out, fix | <unsigned char>n, 0, 0)
    if one and n <= 0xFF:
        return _head(out, one, n, 1)
    if n <= 0xFFFF:
        return _head(out, two, n, 2)
    return _head(out, four, n, 4)


cdef int _value(_Out *out, object value) except -1:
    cdef object kind = type(value)
    cdef object encoded
    cdef double real
    cdef uint64_t bits
    if value is None:
        return _head(out, 0xC0, 0, 0)
    if kind is bool:
        return _head(out, 0xC3 if value else 0xC2, 0, 0)
    if kind is int:
        return _int(out, value)
    if kind is bytes:
        _sized(out, PyBytes_GET_SIZE(value), 0, 0, 0xC4, 0xC5, 0xC6)
        return _raw(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    if kind is str:
        encoded = PyUnicode_AsUTF8String(value)
        _sized(out, PyBytes_GET_SIZE(encoded), 0xA0, 32, 0xD9, 0xDA, 0xDB)
        return _raw(out, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))
    if kind is float:
        real = value
        memcpy(&bits, &real, 8)
        return _head(out, 0xCB, bits, 8)
    if kind is tuple or kind is list:
        _sized(out, len(value), 0x90, 16, 0, 0xDC, 0xDD)
        for item in value:
            _value(out, item)
        return 0
    encoded = _msgpack_packb(value, use_bin_type=True)  # TypeError for what it cannot pack
    return _raw(out, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))


cdef int _shared(_Out *out, object value, dict numbers) except -1:
    """A Shared value in full where the batch first holds it, by its number after (as
    `_shared_wire`); anything else as itself."""
    cdef object number
    if type(value) is not Shared:
        return _value(out, value)
    number = numbers.get(value)
    if number is None:
        numbers[value] = len(numbers)
        return _value(out, (<Shared>value).value)
    return _int(out, number)


cdef int _extra(_Out *out, object extra, dict numbers, object convert) except -1:
    """As `_extra_wire`, written."""
    cdef object kind = type(extra)
    if extra is None or kind is int or kind is bytes or kind is str or kind is float or kind is bool:
        return _value(out, extra)
    if kind is Shared:
        return _shared(out, extra, numbers)
    if kind is not tuple and kind is not list:
        extra = convert(extra)
    _sized(out, len(extra), 0x90, 16, 0, 0xDC, 0xDD)
    for item in extra:
        _shared(out, item, numbers)
    return 0


cdef int _event(_Out *out, object event, dict numbers, object convert) except -1:
    """One event, `[task_id, attempt, state, ts, extra]`."""
    cdef object kind = type(event)
    cdef Finished end
    cdef Event one
    _head(out, 0x95, 0, 0)
    if kind is Finished:
        end = <Finished>event
        _value(out, end.task_id)
        _value(out, end.attempt)
        _head(out, 11, 0, 0)  # FINISHED
        _int64(out, end.ts)
        if end.lease is None:
            _head(out, 0x92, 0, 0)
            _int64(out, end.sent_ns)
            _shared(out, end.description, numbers)
        else:
            _head(out, 0x94, 0, 0)
            _int64(out, end.sent_ns)
            _shared(out, end.description, numbers)
            _int64(out, end.submitted_ns)
            _shared(out, end.lease, numbers)
    elif kind is Event:
        one = <Event>event
        _value(out, one.task_id)
        _value(out, one.attempt)
        _value(out, one.state)
        _value(out, one.ts)
        _extra(out, one.extra, numbers, convert)
    else:
        for item in event[:4]:
            _value(out, item)
        _extra(out, event[4], numbers, convert)
    return 0


cdef bint _ready(object event):
    """Whether `event` packs without `convert`: all but a failure's error."""
    cdef object kind = type(event)
    if kind is Finished:
        return True
    extra = (<Event>event).extra if kind is Event else event[4]
    kind = type(extra)
    return (
        extra is None or kind is int or kind is bytes or kind is str or kind is float
        or kind is bool or kind is Shared or kind is tuple or kind is list
    )


@cython.final
cdef class EventStream:
    """A batch of task events being written: each one is packed (msgpack, as `wire_batch`
    gives it, Shared values numbered in the batch) when it is recorded, while what it holds
    is still in the cache, so that a flush only hands the bytes over. Packing a second's
    10,000 events at once held the I/O thread for 3-5 ms: long enough for the workers'
    queues of async tasks to run dry behind it. An event whose extra needs `convert` (a
    failure's error: decoding it is no work for the hot path) waits for `take` and comes
    after the others in its batch. Past `capacity` events, newer ones are dropped and
    counted. `add` runs no Python code, so a thread switch never splits an event."""

    cdef _Out out  # the events packed, without the array's header
    cdef Py_ssize_t written
    cdef dict numbers  # Shared value -> its number in this batch
    cdef list aside  # events waiting for `convert`
    cdef readonly Py_ssize_t capacity
    cdef public Py_ssize_t dropped

    def __cinit__(self):
        self.out.data, self.out.size, self.out.capacity = NULL, 0, 0

    def __init__(self, Py_ssize_t capacity):
        self.capacity = max(1, capacity)
        self.written = 0
        self.numbers = {}
        self.aside = []
        self.dropped = 0

    def __dealloc__(self):
        free(self.out.data)

    def __len__(self):
        return self.written + len(self.aside)

    cpdef add(self, event):
        """Records `event`: an Event, a Finished, or a 5-tuple of the same fields."""
        if self.written + len(self.aside) >= self.capacity:
            self.dropped += 1
        elif _ready(event):
            self._write(event)
        else:
            self.aside.append(event)

    cdef _write(self, object event):
        """Writes `event`; one that cannot be packed (a value msgpack has no form for) leaves
        the batch as it was, and is dropped and counted."""
        cdef Py_ssize_t size = self.out.size
        cdef Py_ssize_t known = len(self.numbers)
        try:
            _event(&self.out, event, self.numbers, _unconverted)
        except Exception:  # noqa: BLE001 - a batch is not lost for one event
            self.out.size = size
            if len(self.numbers) > known:  # numbers given to values the batch lost
                self.numbers = {v: n for v, n in self.numbers.items() if n < known}
            self.dropped += 1
            return
        self.written += 1

    def take(self, convert):
        """(the batch as msgpack bytes, events dropped since the last take), and a new batch
        begins. The waiting events' extras go through `convert` first (one that raises is
        dropped and counted)."""
        cdef _Out head
        cdef bytes packed
        cdef Py_ssize_t dropped
        while self.aside:  # convert may switch threads: new events land after these
            event = self.aside.pop(0)
            if type(event) is Event:
                event = (event.task_id, event.attempt, event.state, event.ts, event.extra)
            try:
                extra = convert(event[4])
            except Exception:  # noqa: BLE001 - a batch is not lost for one event
                self.dropped += 1
                continue
            self._write((*event[:4], extra))
        head.data, head.size, head.capacity = NULL, 0, 0
        try:
            _sized(&head, self.written, 0x90, 16, 0, 0xDC, 0xDD)
            packed = PyBytes_FromStringAndSize(NULL, head.size + self.out.size)
            memcpy(PyBytes_AS_STRING(packed), head.data, head.size)
            if self.out.size:
                memcpy(PyBytes_AS_STRING(packed) + head.size, self.out.data, self.out.size)
        finally:
            free(head.data)
        dropped = self.dropped
        self.out.size = self.written = self.dropped = 0  # the buffer's pages stay, warm
        self.numbers = {}
        return packed, dropped


@cython.final
cdef class Runs:
    """The runs in progress in an executing process (task id -> (attempt, start ns)), which a
    flush reports as RUNNING while they last, and each run's one event when it ends
    (`[task_id, attempt, RUNNING, start, end]`), written to `stream`. Compiled: an executor
    pays both on every task."""

    cdef readonly dict running
    cdef EventStream stream
    cdef object state

    def __init__(self, EventStream stream, state):
        self.running = {}
        self.stream = stream
        self.state = state  # RUNNING's number

    def started(self, task_id, attempt):
        """Notes a run starting now; returns its start (ns)."""
        cdef long long start = _now_ns()
        self.running[task_id] = (attempt, start)
        return start

    def ended(self, task_id, attempt, long long start, long long end=0):
        """Records the run's event; `end`: when it ended, if that was before this call
        (taken before the answer left, recorded after it)."""
        self.running.pop(task_id, None)
        self.stream.add(Event(task_id, attempt, self.state, start, end or _now_ns()))


def _unconverted(extra):
    raise TypeError(f"a task event's extra of type {type(extra).__name__} is not wire-ready")


from msgpack import packb as _msgpack_packb
