"""Task events' shared values (a kind of task's description, a lease's ids) are sent once per
batch: the events of one kind share one `Shared` object, which the batch carries in full where
it first holds it and names by number after that (core/task_events.py `EventStream`;
head/task_events.py resolves it)."""

import msgpack

from zray._fast import Shared
from zray._private.common import task_states as TS
from zray._private.core.task_events import Failure, _failure_wire
from zray._private.head.task_events import TaskEventTable

NODE, OWNER = b"n" * 28, b"o" * 28


def packed_by(twin, events: list, convert) -> bytes:
    """`events` as a flush sends them: `twin`'s EventStream fed them in order (those whose
    extra needs `convert` last)."""
    stream = twin.EventStream(len(events))
    for event in events:
        stream.add(event)
    return stream.take(convert)[0]


def pack_batch(events: list) -> bytes:
    import zray._fast as fast

    return packed_by(fast, events, _failure_wire)


def task(i: int) -> bytes:
    return bytes([i]) * 20 + b"\x01\x00\x00\x00"


def description(name: str) -> Shared:
    return Shared((TS.ACTOR_TASK, name, name, b"a" * 16, b"p" * 24, (), "", ""))


def through_the_head(events: list, max_attempts: int = 100) -> dict:
    table = TaskEventTable(max_attempts, decode=_decode)
    table.add_packed(NODE, OWNER, 10, pack_batch(events), 0)
    table.merge()
    return {r["task_id"]: r for r in table.rows({})}


def _decode(packed: bytes) -> tuple:
    return msgpack.unpackb(packed, raw=False, use_list=False, strict_map_key=False)


def test_a_shared_description_is_sent_once_and_named_by_number_after():
    m, other = description("A.m"), description("A.other")
    events = [
        (task(1), 0, TS.FINISHED, 3_000, (1_000, m)),
        (task(2), 0, TS.FINISHED, 4_000, (2_000, other)),
        (task(3), 0, TS.FINISHED, 5_000, (2_500, m)),
        (task(4), 0, TS.FAILED, 6_000, Failure(ValueError("bad"), (2_600, m))),
        (task(5), 0, TS.FINISHED, 7_000, (2_700, None)),  # described before, by its own event
        (task(6), 0, TS.FINISHED, 8_000, None),
        (task(7), 0, TS.FINISHED, 9_000, (2_800, other)),
    ]
    wire = _decode(pack_batch(events))
    assert wire[0][4] == (1_000, m.value) and wire[1][4] == (2_000, other.value)
    assert wire[2][4] == (2_500, 0)  # the first value sent in full
    assert wire[3][4] == (2_700, None) and wire[4][4] is None
    assert wire[5][4] == (2_800, 1)
    # A failure's error is converted at the flush, off the hot path: after the others.
    assert wire[6][:2] == (task(4), 0)
    assert wire[6][4] == (TS.TASK_EXECUTION_EXCEPTION, "bad", 2_600, 0)
    smaller = len(pack_batch(events))
    rows = through_the_head(events)
    names = {i: rows[task(i).hex()]["name"] for i in (1, 2, 3, 4, 7)}
    assert names == {1: "A.m", 2: "A.other", 3: "A.m", 4: "A.m", 7: "A.other"}
    three, four = rows[task(3).hex()], rows[task(4).hex()]
    assert [e["state"] for e in three["events"]] == [
        "PENDING_ARGS_AVAIL",
        "SUBMITTED_TO_WORKER",
        "FINISHED",
    ]
    assert (four["state"], four["error_type"], four["actor_id"]) == (
        "FAILED",
        "TASK_EXECUTION_EXCEPTION",
        (b"a" * 16).hex(),
    )
    # Equal descriptions that are distinct objects are each sent in full (no false sharing).
    unshared = [(task(i), 0, TS.FINISHED, 3_000, (1_000, description("A.m"))) for i in range(1, 4)]
    assert all(type(e[4][1]) is tuple for e in _decode(pack_batch(unshared)))
    assert smaller < len(pack_batch(unshared)) * 7 / 3


def test_a_number_naming_no_value_leaves_the_call_undescribed_not_dropped():
    lease = Shared((NODE, b"w" * 28))
    rows = through_the_head(
        [
            (task(1), 0, TS.FINISHED, 3_000, (1_000, 5)),  # names a value that is not there
            (task(2), 0, TS.SUBMITTED_TO_WORKER, 3_500, lease),
            (task(2), 0, TS.FINISHED, 4_000, (2_000, 0)),  # names a lease, not a description
        ]
    )
    assert {rows[task(i).hex()]["state"] for i in (1, 2)} == {"FINISHED"}
    assert rows[task(1).hex()]["name"] == rows[task(2).hex()]["name"] == ""
    assert rows[task(2).hex()]["worker_id"] == (b"w" * 28).hex()


def test_a_malformed_value_sent_in_full_keeps_the_numbers_of_those_after_it():
    m = description("A.m")
    events = [
        (task(1), 0, TS.FINISHED, 3_000, (1_000, [1, 2, 3])),  # neither a description nor a lease
        (task(2), 0, TS.FINISHED, 4_000, (2_000, m)),
        (task(3), 0, TS.FINISHED, 5_000, (3_000, 1)),
    ]
    rows = through_the_head(events)
    assert [rows[task(i).hex()]["name"] for i in (1, 2, 3)] == ["", "A.m", "A.m"]


def test_the_description_of_an_evicted_attempts_event_still_describes_later_calls():
    m = description("A.m")
    table = TaskEventTable(1, decode=_decode)
    # task 1's attempt is recorded, then evicted by task 2's: its late end is skipped.
    table.add(NODE, OWNER, 10, [(task(1), 0, TS.RUNNING, 500, 600)], 0)
    table.add(NODE, OWNER, 10, [(task(2), 0, TS.RUNNING, 700, 800)], 0)
    events = [
        (task(1), 0, TS.FINISHED, 3_000, (1_000, m)),
        (task(3), 0, TS.FINISHED, 4_000, (2_000, m)),
    ]
    wire = _decode(pack_batch(events))
    assert wire[1][4] == (2_000, 0)
    table.add(NODE, OWNER, 10, wire, 0)
    rows = {r["task_id"]: r for r in table.rows({})}
    assert task(1).hex() not in rows
    assert rows[task(3).hex()]["name"] == "A.m"


def test_a_run_ends_when_its_answer_left_not_when_it_is_recorded():
    """The executor answers a call first and records its run after (worker_main, actor_host):
    the RUNNING event keeps the end time taken before the answer left."""
    from zray._private.core.task_events import TaskEvents

    events = TaskEvents(core=None)
    start = events.run_started(task(1), 0)
    events.run_ended(task(1), 0, start, start + 5)
    packed, dropped = events.events.take(None)
    assert (_decode(packed), dropped) == (((task(1), 0, TS.RUNNING, start, start + 5),), 0)
    assert task(1) not in events.running


def _spec(i: int, name: str = "f", parent: bytes = b"p" * 24):
    from zray._fast import TaskSpec

    return TaskSpec(
        task_id=task(i),
        function_id=b"fn",
        name=name,
        num_returns=1,
        return_ids=(),
        frames=(),
        top_refs=(),
        nested=(),
        resources={"CPU": 1.0},
        key=((("CPU", 10000),), "DEFAULT"),
        max_retries=3,
        retry_exceptions=False,
        func_name=name,
        parent_task_id=parent,
        events=True,
        event_attempt=0,
    )


def _submitter():
    """A TaskSubmitter with only what recording task events needs."""
    import threading

    from zray._private.core.task_submitter import TaskSubmitter

    submitter = TaskSubmitter.__new__(TaskSubmitter)
    submitter.lock = threading.RLock()
    submitter._descriptions, submitter.shapes, submitter.leases = {}, {}, {}
    submitter._describe = submitter._description
    submitter._record = None
    return submitter


def _queued(owner, spec):
    """`spec` queued for a lease, as TaskSubmitter._queue leaves it."""
    from zray._private.core.task_submitter import ShapeQueue

    owner.shapes.setdefault(spec.key, ShapeQueue()).tasks.append(spec)


def _pushed(owner, spec, lease):
    """`spec` taken off its queue and pushed to `lease`, as TaskSubmitter._push records it."""
    from zray._fast import note_pushed

    shape = owner.shapes.get(spec.key)
    if shape is not None and spec in shape.tasks:
        shape.tasks.remove(spec)
    lease.inflight[spec.task_id] = spec
    if not note_pushed(spec, lease.where, owner._descriptions, owner._describe):
        owner._pushed_reported(spec, lease.where)


def _submitted(specs, owner=None) -> list:
    """What TaskSubmitter._record_submitted records for `specs` (arguments ready), as the
    submitter `owner` (a fresh one by default)."""
    owner = owner or _submitter()
    recorded: list = []
    owner._record = recorded.append
    for spec in specs:
        owner._record_submitted(spec, TS.PENDING_NODE_ASSIGNMENT)
    return recorded


def test_tasks_of_one_kind_share_a_description_that_a_batch_sends_once():
    events = _submitted([_spec(1), _spec(2, "g"), _spec(3), _spec(4, parent=b"q" * 24)])
    assert events[0][4] is events[2][4]  # one (function, name, parent, shape): one value
    assert events[1][4] is not events[0][4] and events[3][4] is not events[0][4]
    wire = _decode(pack_batch(events))
    assert [type(e[4]) for e in wire] == [tuple, tuple, int, tuple]
    assert wire[2][4] == 0
    rows = through_the_head(events)
    described = {i: rows[task(i).hex()] for i in (1, 2, 3, 4)}
    assert {i: r["name"] for i, r in described.items()} == {1: "f", 2: "g", 3: "f", 4: "f"}
    assert described[3]["required_resources"] == {"CPU": 1.0}
    assert described[4]["parent_task_id"] == (b"q" * 24).hex()
    assert [e["state"] for e in described[3]["events"]] == [
        "PENDING_ARGS_AVAIL",
        "PENDING_NODE_ASSIGNMENT",
    ]


def test_a_tasks_submission_event_is_left_untracked_by_the_garbage_collector():
    """A dict in each description kept every recorded event tracked until its batch left,
    and a driver's full collections walked them (4.3 against 0.8 us of collector time per
    async task, perf/bench_task_events.py --toggle): the events hold atoms and the kind's
    compiled Shared description, untracked, so the first young collection after they are
    recorded untracks them."""
    import gc

    import pytest

    from zray._fast import USING_FAST

    if not USING_FAST:
        pytest.skip("the pure twin's Shared is a Python object: the collector tracks it")
    owner = _submitter()
    events = _submitted([_spec(i) for i in range(1, 50)], owner)
    gc.collect(0)
    assert not any(gc.is_tracked(event) for event in events)


def _sent_and_ended(specs, ended) -> tuple:
    """Each of `specs` submitted and pushed as TaskSubmitter.submit and _push record them,
    those in `ended` finished (_record_end), then a flush's report of the rest:
    (the recorded events, the flush's)."""
    from zray._private.core.task_submitter import LeaseState

    owner = _submitter()
    recorded: list = []
    owner._record = recorded.append
    where = Shared((b"n" * 28, b"w" * 28))
    lease = LeaseState(1, (), b"w" * 28, "", "", node_id=b"n" * 28, where=where)
    owner.leases[lease.lease_id] = lease
    for spec in specs:  # submit's part for a task with its arguments ready, queued
        spec.submitted_ns = 1_000
        _queued(owner, spec)
    for spec in specs:
        _pushed(owner, spec, lease)
    assert not any(shape.tasks for shape in owner.shapes.values())  # its lease has it
    for spec in specs:
        if spec.task_id in ended:
            del lease.inflight[spec.task_id]  # its answer (_answered)
            owner._record_end(spec, None)
    flushed: list = []
    owner.report_in_flight(flushed.append)
    return recorded, flushed


def test_a_task_queued_at_a_flush_is_listed_once_and_its_end_still_says_its_sending():
    """A burst of async tasks is mostly queued when a flush comes: each is reported once, at
    PENDING_NODE_ASSIGNMENT with its description, and still ends with one event saying its
    whole sending (three events each instead of one cost async tasks ~10%)."""
    from zray._private.core.task_submitter import LeaseState

    owner = _submitter()
    recorded: list = []
    owner._record = recorded.append
    lease = LeaseState(1, (), b"w" * 28, "", "", node_id=b"n" * 28, where=Shared((NODE, NODE)))
    owner.leases[lease.lease_id] = lease
    spec = _spec(1)
    spec.submitted_ns = 1_000
    _queued(owner, spec)  # no lease yet
    flushed: list = []
    owner.report_in_flight(flushed.append)
    assert [(e[0], e[2], e[3]) for e in flushed] == [(task(1), TS.PENDING_NODE_ASSIGNMENT, 1_000)]
    assert flushed[0][4] is spec.description and spec.description.value[2] == spec.func_name
    again: list = []
    owner.report_in_flight(again.append)
    assert not again  # once
    _pushed(owner, spec, lease)  # at last, then answered
    del lease.inflight[spec.task_id]
    owner._record_end(spec, None)
    [end] = recorded
    assert end[2] == TS.FINISHED and end[4][2:] == (1_000, lease.where)


def test_a_tasks_one_end_event_says_its_submission_and_lease_to_the_head():
    specs = [_spec(1), _spec(2), _spec(3)]
    recorded, flushed = _sent_and_ended(specs, {task(1), task(3)})
    assert [(e[0], e[2]) for e in recorded] == [(task(1), TS.FINISHED), (task(3), TS.FINISHED)]
    # The task still on its way is reported by the flush, the ended ones are not again.
    assert [(e[0], e[2]) for e in flushed] == [
        (task(2), TS.PENDING_NODE_ASSIGNMENT),
        (task(2), TS.SUBMITTED_TO_WORKER),
    ]
    assert not _sent_and_ended([_spec(4)], {task(4)})[1]  # nothing left for the flush
    events = recorded + flushed
    wire = _decode(pack_batch(events))
    # Task 3 names the description and the lease task 1's end sent (values 0 and 1).
    assert wire[0][4][1:] == (events[0][4][1].value, 1_000, (b"n" * 28, b"w" * 28))
    assert wire[1][4][1:] == (0, 1_000, 1)
    assert wire[2][4] == 0 and wire[3][4] == 1  # and so do task 2's, reported by the flush
    assert len(pack_batch(events)) < 2 * len(pack_batch(events[:1]))
    rows = through_the_head(events)
    for i in (1, 2, 3):
        row = rows[task(i).hex()]
        assert (row["name"], row["node_id"], row["worker_id"]) == (
            "f",
            (b"n" * 28).hex(),
            (b"w" * 28).hex(),
        )
        assert [e["state"] for e in row["events"]][:3] == [
            "PENDING_ARGS_AVAIL",
            "PENDING_NODE_ASSIGNMENT",
            "SUBMITTED_TO_WORKER",
        ]
        assert row["required_resources"] == {"CPU": 1.0}
    assert [rows[task(i).hex()]["state"] for i in (1, 2, 3)] == [
        "FINISHED",
        "SUBMITTED_TO_WORKER",
        "FINISHED",
    ]


def test_the_compiled_twin_untracks_a_tuple_of_atoms_at_once():
    """untracked_tuple: what the collector would untrack at its next look, untracked now;
    anything else left as it is (both twins return the tuple itself)."""
    import gc

    import pytest

    from zray._fast import _untracked_py

    try:
        from zray._fast import untracked as compiled
    except ImportError:  # pragma: no cover - the compiled set is built by .ci/run
        pytest.skip("the compiled zray._fast.untracked is not built")
    for twin in (compiled, _untracked_py):
        atoms = (1, "a", b"b", 2.5, None, True, (("CPU", 1.0),), ())
        assert twin.untracked_tuple(atoms) is atoms
        holding_a_list = (1, ([],))
        assert twin.untracked_tuple(holding_a_list) is holding_a_list
        assert gc.is_tracked(holding_a_list) and gc.is_tracked(holding_a_list[1])
    assert not gc.is_tracked(atoms) and not gc.is_tracked(atoms[6])


def test_recording_an_end_neither_tracks_nor_counts_toward_a_collection():
    """A task's end event is held until its batch leaves (a second), and any tracked object
    allocated meanwhile, untracked or not, counts toward the collector's next young
    collection: 20,000 and more a second set off young collections every few hundred tasks
    and through them full ones (events cost async tasks 11-16% with the collector on, 2%
    with it held off). The compiled Event and Finished are not garbage-collected types."""
    import gc

    import pytest

    from zray._fast import USING_FAST

    if not USING_FAST:
        pytest.skip("the pure twins are Python objects: the collector tracks and counts them")
    from zray._private.core.task_submitter import LeaseState

    owner = _submitter()
    recorded: list = []
    recorded_append = recorded.append
    owner._record = recorded_append
    lease = LeaseState(1, (), b"w" * 28, "", "", node_id=b"n" * 28, where=Shared((NODE, NODE)))
    specs = [_spec(i % 250) for i in range(1, 1000)]
    for spec in specs:  # as submit and _push leave them
        spec.submitted_ns = 1_000
        _pushed(owner, spec, lease)
    gc.disable()  # the count is read, not reset by a collection
    try:
        before = gc.get_count()[0]
        for spec in specs:
            owner._record_end(spec, None)
        counted = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert len(recorded) == len(specs) and counted <= 0
    assert not any(gc.is_tracked(e) for e in recorded)
    assert recorded[0][2] == TS.FINISHED and recorded[0][4][3] is lease.where


def test_a_shared_value_holds_atoms_only_in_both_twins():
    """Shared is untracked in the compiled twin: what it holds must never form a cycle."""
    import pytest

    from zray._fast import _untracked_py

    twins = [_untracked_py]
    try:
        from zray._fast import untracked

        twins.append(untracked)
    except ImportError:  # pragma: no cover - the compiled set is built by .ci/run
        pass
    for twin in twins:
        assert twin.Shared((1, "a", (("CPU", 1.0),), b"x", None)).value[2] == (("CPU", 1.0),)
        for bad in ((1, []), ({"CPU": 1.0},), (object(),)):
            with pytest.raises(TypeError, match="atoms"):
                twin.Shared(bad)


def test_both_twins_make_a_batch_wire_ready_alike():
    """wire_batch: the compiled pass and its pure twin give the same tuples for a mixed batch
    (Events, Finished ends of a task and of an actor call, a failure through `convert`)."""
    import pytest

    from zray._fast import _untracked_py

    try:
        from zray._fast import untracked as compiled
    except ImportError:  # pragma: no cover - the compiled set is built by .ci/run
        pytest.skip("the compiled zray._fast.untracked is not built")

    def batch(twin):
        desc = twin.Shared((TS.NORMAL_TASK, "f", "f", b"", b"p" * 24, (("CPU", 1.0),), "", ""))
        lease = twin.Shared((NODE, b"w" * 28))
        return [
            twin.Finished(task(1), 0, 30, 10, desc, 5, lease),
            twin.Event(task(2), 0, TS.SUBMITTED_TO_WORKER, 12, lease),
            twin.Finished(task(3), 1, 31, 11, desc),
            twin.Event(task(4), 0, TS.RUNNING, 13, 14),
            (task(5), 0, TS.FAILED, 40, ValueError("boom")),
            (task(6), 0, TS.SUBMITTED_TO_WORKER, 41, desc),
            twin.Event(task(7), 0, TS.FINISHED, 42, None),
        ]

    def convert(error):
        return [TS.TASK_EXECUTION_EXCEPTION, str(error)]

    wires = [twin.wire_batch(batch(twin), convert) for twin in (compiled, _untracked_py)]
    assert wires[0] == wires[1]
    wire = wires[0]
    assert wire[0][4][1][1] == "f" and wire[0][4][3] == (NODE, b"w" * 28)  # sent in full
    assert wire[1][4] == 1 and wire[2][4] == (11, 0) and wire[5][4] == 0  # then by number
    assert wire[3][4] == 14 and wire[4][4] == [TS.TASK_EXECUTION_EXCEPTION, "boom"]
    assert wire[6] == (task(7), 0, TS.FINISHED, 42, None)


def _packing_twins():
    """(compiled, pure) zray._fast.untracked: the compiled one must be built unless the
    pure twins were asked for (ZRAY_FAST=0)."""
    import pytest

    import zray._fast as fast
    from zray._config import config

    compiled, pure = fast.implementations()["untracked"]
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(f"zray._fast.untracked is not built: {fast.FAST_IMPORT_ERRORS['untracked']}")
    return compiled, pure


class _Pick:
    def __init__(self, index: int):
        self.index = index


def test_the_compiled_packer_writes_what_msgpack_writes_for_the_same_batch():
    """EventStream writes msgpack itself (no wire tuples in between): for generated batches of
    every event shape, with atoms at each of msgpack's format boundaries, its bytes are
    msgpack's for the pure twin's wire tuples, Shared values numbered alike."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    compiled, pure = _packing_twins()
    edges = [0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    ints = st.one_of(
        st.sampled_from(edges + [-e for e in edges if e <= 2**63] + [-33, -129, -32769]),
        st.integers(-(2**63), 2**64 - 1),
    )
    sizes = st.sampled_from([0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536])
    atoms = st.one_of(
        st.none(),
        st.booleans(),
        ints,
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.binary(max_size=40),
        sizes.map(lambda n: "é" * (n // 2) + "x" * (n % 2)),
        sizes.map(lambda n: b"b" * n),
    )
    values = st.recursive(
        atoms, lambda inner: st.tuples(inner, inner) | st.lists(inner), max_leaves=8
    )
    shared_values = st.lists(st.tuples(atoms, atoms), min_size=1, max_size=4)

    tids = st.binary(max_size=24)
    times = st.one_of(st.sampled_from([0, 2**32, 2**63 - 1, -(2**63)]), st.integers(0, 2**62))
    # An event as a recipe either twin builds: a _Pick names one of the batch's Shared values.
    pick = st.builds(_Pick, st.integers(0, 3))
    extras = values | pick | st.tuples(pick, atoms) | st.lists(pick | atoms)
    recipes = st.one_of(
        st.tuples(st.just("Finished"), tids, ints, times, times, pick, times, pick),
        st.tuples(st.just("Finished"), tids, ints, times, times, pick),
        st.tuples(st.just("Event"), tids, ints, ints, ints, extras),
        st.tuples(st.just("tuple"), tids, ints, ints, ints, extras | st.text().map(ValueError)),
    )

    def build(twin, shared_tuples, recipe):
        shared = [twin.Shared(v) for v in shared_tuples]

        def resolve(value):
            if type(value) is _Pick:
                return shared[value.index % len(shared)]
            if type(value) in (tuple, list):
                return type(value)(resolve(item) for item in value)
            return value

        events = []
        for kind, *fields in recipe:
            fields = [resolve(f) for f in fields]
            events.append(tuple(fields) if kind == "tuple" else getattr(twin, kind)(*fields))
        return events

    def convert(error):
        return [TS.TASK_EXECUTION_EXCEPTION, str(error)]

    @settings(max_examples=300, deadline=None)
    @given(shared_values, st.lists(recipes, max_size=40))
    def check(shared_tuples, recipe):
        # the pure twin's wire tuples, packed by msgpack
        expected = packed_by(pure, build(pure, shared_tuples, recipe), convert)
        assert packed_by(compiled, build(compiled, shared_tuples, recipe), convert) == expected

    check()


def test_the_compiled_packer_sends_a_large_batch_whole():
    """Past msgpack's 16-bit array length and its buffer's first size: 70,000 ends."""
    compiled, pure = _packing_twins()

    def ends(twin):
        lease = twin.Shared((NODE, b"w" * 28))
        desc = twin.Shared((TS.NORMAL_TASK, "f", "f", b"", b"p" * 24, (("CPU", 1.0),), "", ""))
        return [
            twin.Finished(task(i % 200), 0, 1_700_000_000_000_000_000 + i, 10, desc, 5, lease)
            for i in range(70_000)
        ]

    packed = packed_by(compiled, ends(compiled), None)
    assert packed == packed_by(pure, ends(pure), None)
    wire = _decode(packed)
    assert len(wire) == 70_000 and wire[-1][3] == 1_700_000_000_000_000_000 + 69_999


def test_a_plain_call_is_described_by_the_first_event_that_needs_it():
    """A plain actor call is sent undescribed (off a sync call's round trip): the event that
    first reports its sending (its end, or a flush while it is in flight) makes its
    description; later ones, and calls another event described already, carry none."""
    from zray._private.core.actor_submitter import ActorCall, ActorRecord

    record = ActorRecord(b"a" * 16, "A")
    plain = ActorCall(task(1), "m", 1, [], [b""], [], 0, [], "", -1, parent_task_id=b"p" * 24)
    plain.info = None
    info = record.described(plain)
    assert info is record.info("m", b"p" * 24) and info.value[1] == "A.m"
    assert record.described(plain) is None  # carried once
    waited = ActorCall(task(2), "m", 1, [], [b""], [], 0, [], "", -1)  # its PENDING said it
    assert record.described(waited) is None


def test_a_flush_lists_only_the_tasks_queued_since_the_last_one():
    """The queue is read from its newest end up to the first task a flush listed: each
    queued task is listed once, a retry queued meanwhile (recorded apart) does not hide the
    tasks queued before it, and a flush that finds nothing new lists nothing."""
    owner = _submitter()
    first, second = _spec(1), _spec(2)
    for spec in (first, second):
        _queued(owner, spec)
    listed: list = []
    owner.report_in_flight(listed.append)
    assert [e[0] for e in listed] == [task(2), task(1)]
    later, retried, last = _spec(3), _spec(4), _spec(5)
    retried.submitted_ns, retried.description = 0, first.description  # _retry leaves these
    for spec in (later, retried, last):
        _queued(owner, spec)
    listed.clear()
    owner.report_in_flight(listed.append)
    assert [e[0] for e in listed] == [task(5), task(3)]
    listed.clear()
    owner.report_in_flight(listed.append)
    assert listed == []
