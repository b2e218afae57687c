"""zray._fast untracked: what an owner keeps per queued task and per result, for both
implementations; the compiled ones are not tracked by the garbage collector (a full collection
while a million tasks are queued walks none of them)."""

import gc

import pytest

import zray._fast as fast
from zray._config import config
from zray._private.core.arguments import pack_arguments


def _load(impl):
    compiled, pure = fast.implementations()["untracked"]
    if impl == "python":
        return pure
    if compiled is None:
        if not config.fast:
            pytest.skip("compiled modules not built and ZRAY_FAST=0")
        pytest.fail(
            f"zray._fast.untracked is not built: {fast.FAST_IMPORT_ERRORS.get('untracked')}"
        )
    return compiled


@pytest.fixture(scope="module", params=["cython", "python"])
def untracked(request):
    return _load(request.param)


def _spec(module, **extra):
    fields = dict(
        task_id=b"t" * 24,
        function_id=b"f" * 28,
        name="tiny",
        num_returns=1,
        return_ids=(b"o" * 28,),
        frames=(b"meta",),
        top_refs=(),
        nested=(),
        resources={"CPU": 1.0},
        key=(("CPU", 10000),),
        max_retries=3,
        retry_exceptions=False,
    )
    return module.TaskSpec(**{**fields, **extra})


DEFAULTS = {
    "attempt": 0,
    "resolved": (),
    "resolved_frames": (),
    "lease_id": 0,
    "cancelled": False,
    "state": "resolving",
    "inline": False,
    "strategy": "DEFAULT",
    "placement_group": "",
    "generator_backpressure": -1,
    "reconstructions": 0,
    "lost_argument_reruns": 0,
    "args_released": False,
    "lineage_pins": None,
    "borrowed": (),
    "runtime_env": "",
    "func_name": "",
    "parent_task_id": b"",
    "events": False,
    "event_attempt": -1,
}


def test_task_spec_defaults_and_fields(untracked):
    spec = _spec(untracked)
    assert {name: getattr(spec, name) for name in DEFAULTS} == DEFAULTS
    spec.state, spec.attempt, spec.borrowed = "queued", 2, [(b"x" * 28, "addr")]
    assert (spec.state, spec.attempt, spec.borrowed) == ("queued", 2, [(b"x" * 28, "addr")])
    with pytest.raises(AttributeError):
        spec.not_a_field = 1  # a typo must not pass silently
    given = _spec(untracked, state="queued", events=True, event_attempt=0)
    assert (given.state, given.events, given.event_attempt) == ("queued", True, 0)


def test_a_spec_recording_events_stamps_its_submission(untracked):
    """Built by its submission: with events on it is attempt 0, and with its arguments ready
    it keeps when it was submitted (its end or a flush reports it); otherwise neither."""
    import time

    before = time.time_ns()
    ready = _spec(untracked, events=True)
    assert ready.event_attempt == 0 and before <= ready.submitted_ns <= time.time_ns()
    waiting = _spec(untracked, events=True, top_refs=[object()])
    assert (waiting.event_attempt, waiting.submitted_ns) == (0, 0)  # recorded at submission
    assert _spec(untracked, events=True, event_attempt=2).event_attempt == 2
    off = _spec(untracked)
    assert (off.event_attempt, off.submitted_ns) == (-1, 0)


def test_task_spec_payload_and_pins(untracked):
    spec = _spec(untracked)
    assert spec.payload == (b"meta",)  # nothing resolved: the call's own frames, not a copy
    spec.resolved_frames = [b"arg"]
    assert list(spec.payload) == [b"meta", b"arg"]

    class Ref:
        _id = b"r" * 28

    spec.top_refs, spec.nested = [Ref()], [(b"n" * 28, "owner")]
    assert spec.pinned_ids == [b"r" * 28, b"n" * 28]


def test_entry(untracked):
    entry = untracked.Entry(1, (), b"node", 42)
    assert (entry.kind, entry.frames, entry.node_id, entry.size) == (1, (), b"node", 42)
    assert untracked.Entry(0).frames == () and untracked.Entry(0).size == 0
    assert "size=42" in repr(entry)


def test_compiled_records_are_not_tracked():
    compiled = _load("cython")
    assert not gc.is_tracked(_spec(compiled))
    assert not gc.is_tracked(compiled.Entry(0, (b"x",)))


def test_an_object_ref_is_not_tracked_but_a_subclass_adding_fields_is():
    from zray.object_ref import ObjectRef

    class Labelled(ObjectRef):  # what it adds could make a cycle
        __slots__ = ("label",)

    ref, labelled = ObjectRef(b"r" * 28, _count=False), Labelled(b"s" * 28, _count=False)
    assert gc.is_tracked(ref) is (not fast.USING_FAST)
    assert gc.is_tracked(labelled)
    gc.collect()
    assert ref.binary() == b"r" * 28 and ref.owner_address() == ""


def test_untrack_stops_tracking_in_the_compiled_twin_only():
    compiled, pure = _load("cython"), _load("python")
    value, other = [1], [2]
    compiled.untrack(value)
    pure.untrack(other)
    assert not gc.is_tracked(value) and gc.is_tracked(other)


def test_untracked_records_keep_what_they_hold_alive_through_collections():
    """An untracked record counts as a reference from outside: a cycle it holds survives."""
    compiled = _load("cython")

    class Node:
        pass

    cycle = Node()
    cycle.me = cycle
    spec = _spec(compiled, lineage_pins=[cycle])
    entry = compiled.Entry(0, [cycle])
    del cycle
    gc.collect()
    assert spec.lineage_pins[0].me is spec.lineage_pins[0]
    assert entry.frames[0].me is entry.frames[0]


def test_a_call_without_arguments_packs_into_untracked_values():
    for args in [(), (1, "two", 3.0)]:
        frames, top_refs, nested = pack_arguments(None, args, {})
        gc.collect()  # tuples of atoms are untracked by a collection's first look
        assert not any(gc.is_tracked(part) for part in (frames, top_refs, nested))


def test_an_end_built_at_the_push_is_stamped_with_the_wall_clock_and_recorded_once(untracked):
    """record_finished, on a sync call's round trip: the end event built at the push gets
    time.time_ns's clock and goes to `record`, once; a spec without one (or whose sending a
    flush reported meanwhile) is left for the general path."""
    import time

    spec = _spec(untracked)
    recorded: list = []
    assert not untracked.record_finished(spec, recorded.append)  # never pushed
    lease = untracked.Shared((b"n" * 28, b"w" * 28))
    built = untracked.Finished(spec.task_id, 0, 0, 2_000, untracked.Shared(("f",)), 1_000, lease)
    spec.finished, spec.submitted_ns = built, 1_000
    before = time.time_ns()
    assert untracked.record_finished(spec, recorded.append)
    assert recorded == [built] and before <= built.ts <= time.time_ns()
    assert spec.finished is None and spec.submitted_ns == 0
    assert not untracked.record_finished(spec, recorded.append) and len(recorded) == 1
    spec.finished = built  # a flush reported the sending: submitted_ns is 0 again
    assert not untracked.record_finished(spec, recorded.append) and len(recorded) == 1


def test_a_push_describes_the_task_once_and_builds_its_end(untracked):
    """note_pushed, after a push: the spec finds its kind's description (or has `describe` make it, once), and gets the end event its end
    will stamp, which says its submission, push and lease; nothing if a flush reported the
    submission already."""
    import time

    made: list = []
    descriptions: dict = {}

    def describe(spec):
        key = (spec.name, spec.func_name, spec.parent_task_id, spec.key, spec.placement_group)
        made.append(key)
        description = descriptions[key] = untracked.Shared((spec.name,))
        return description

    lease = untracked.Shared((b"n" * 28, b"w" * 28))
    first, second, reported = _spec(untracked), _spec(untracked), _spec(untracked)
    for spec in (first, second):
        spec.event_attempt, spec.submitted_ns = 0, 1_000
        before = time.time_ns()
        assert untracked.note_pushed(spec, lease, descriptions, describe)
        built = spec.finished
        assert before <= built.sent_ns <= time.time_ns() and built.lease is lease
        assert (built.task_id, built.attempt, built.sent_ns, built.submitted_ns) == (
            spec.task_id,
            0,
            built.sent_ns,
            1_000,
        )
        assert built.lease is lease and built.description is spec.description
    assert len(made) == 1  # described once, looked up after
    assert first.description is second.description
    assert not untracked.note_pushed(reported, lease, descriptions, describe)
    assert reported.finished is None


def _unpacked(packed: bytes) -> tuple:
    import msgpack

    return msgpack.unpackb(packed, use_list=False)


def test_a_run_is_noted_while_it_lasts_and_recorded_as_one_event(untracked):
    stream = untracked.EventStream(10)
    runs = untracked.Runs(stream, 8)
    start = runs.started(b"t" * 24, 1)
    assert runs.running == {b"t" * 24: (1, start)}  # a flush reports it RUNNING meanwhile
    runs.ended(b"t" * 24, 1, start, start + 5)  # its end taken before its answer left
    runs.ended(b"u" * 24, 0, 7)  # no end given: now
    assert runs.running == {} and len(stream) == 2
    packed, dropped = stream.take(None)
    first, second = _unpacked(packed)
    assert first == (b"t" * 24, 1, 8, start, start + 5) and dropped == 0
    assert second[:4] == (b"u" * 24, 0, 8, 7) and second[4] >= start


def test_a_stream_converts_errors_last_and_drops_what_it_cannot_pack_alone(untracked):
    """The batch keeps its events but for the one that cannot be packed or converted, each
    counted as dropped; past its capacity it drops the newest; then a new batch begins,
    numbering its shared values from 0 again."""
    lease = untracked.Shared((b"n" * 28, b"w" * 28))
    stream = untracked.EventStream(5)
    stream.add(untracked.Event(b"a", 0, 5, 1, lease))
    stream.add((b"b", 0, 12, 2, ValueError("boom")))  # converted when taken
    stream.add((b"c", 0, 5, 3, (lease, object())))  # no msgpack form: dropped
    stream.add((b"d", 0, 12, 4, KeyError("unconvertible")))
    stream.add(untracked.Event(b"e", 0, 5, 5, lease))
    stream.add(untracked.Event(b"f", 0, 5, 6, lease))  # the fifth kept
    stream.add(untracked.Event(b"h", 0, 5, 6, lease))  # past the capacity

    def convert(error):
        if isinstance(error, KeyError):
            raise RuntimeError("cannot")
        return [1, str(error)]

    packed, dropped = stream.take(convert)
    wire = _unpacked(packed)
    assert [e[0] for e in wire] == [b"a", b"e", b"f", b"b"] and dropped == 3
    assert wire[0][4] == (b"n" * 28, b"w" * 28) and wire[1][4] == 0  # sent once, then named
    assert wire[3][4] == (1, "boom")
    assert len(stream) == 0 and stream.take(convert) == (b"\x90", 0)
    stream.add(untracked.Event(b"g", 0, 5, 7, lease))
    assert _unpacked(stream.take(convert)[0])[0][4] == (b"n" * 28, b"w" * 28)  # a new batch


def test_a_plain_calls_end_says_its_sending_and_description_once(untracked):
    """call_ended: the end of a call sent and not reported says its sending, with the
    description made now for a plain call (none yet), or the one it holds, or none if an
    earlier event carried it; a call whose sending a flush reported ends with FINISHED alone."""
    from zray._private.core.actor_submitter import ActorCall, ActorRecord

    recorded: list = []
    actor = ActorRecord(b"a" * 16, "A")

    def call(i: int, sent_ns: int, info):
        made = ActorCall(bytes([i]) * 24, "m", 1, [], [b""], [], 0, [], "", -1)
        made.parent_task_id, made.sent_ns, made.info = b"p" * 24, sent_ns, info
        return made

    plain, general, waited, flushed = (
        call(1, 10, None),
        call(2, 20, "x"),
        call(3, 30, ()),
        call(4, 0, ()),
    )
    for each in (plain, general, waited, flushed):
        untracked.call_ended(each, actor, recorded.append)
        assert (each.sent_ns, each.info) == (0, ())
    ends = [e.wire() for e in recorded]
    assert [(e[0][0], e[2]) for e in ends] == [(1, 11), (2, 11), (3, 11), (4, 11)]
    assert ends[0][4] == (10, actor.info("m", b"p" * 24)) and ends[1][4] == (20, "x")
    assert ends[2][4] == (30, None) and ends[3][4] is None


def test_a_plain_calls_end_stamps_the_event_built_after_its_send(untracked):
    """call_ended uses the end event built after the send while that sending is the one
    unreported (it carries the description), and builds its own otherwise."""
    from zray._private.core.actor_submitter import ActorCall, ActorRecord

    recorded: list = []
    actor = ActorRecord(b"a" * 16, "A")
    info = actor.info("m", b"p" * 24)
    call = ActorCall(b"c" * 24, "m", 1, [], [b""], [], 0, [], "", -1)
    call.parent_task_id, call.sent_ns, call.info = b"p" * 24, 10, None
    call.finished = built = untracked.Finished(call.task_id, 0, 0, 10, info)
    untracked.call_ended(call, actor, recorded.append)
    assert recorded == [built] and built.ts > 0 and built.wire()[4] == (10, info)
    assert (call.finished, call.info, call.sent_ns) == (None, (), 0)
    # Sent again since (a restarted actor): the stale event is not used.
    call.sent_ns, call.info = 20, None
    call.finished = untracked.Finished(call.task_id, 0, 0, 10, info)
    untracked.call_ended(call, actor, recorded.append)
    assert recorded[1].wire()[4] == (20, info) and call.finished is None
