"""Calls from one caller to a plain actor (max_concurrency=1) run in submission order.

zray/_private/core/actor_ordering.py decides what the caller sends when; this drives it against a
model of everything around it that can reorder: arguments resolve in any order, the actor's
worker crashes with calls in flight (its unexecuted messages are lost) and restarts at a new
address, the head's notices (one FIFO connection) and the old and new workers' answers (other
connections) interleave arbitrarily, and an answer from a dead worker may arrive after its call
was queued again. The actor executes what reaches it in arrival order, one call at a time, as
ZeroMQ delivers one connection's messages in order.
"""

from collections import deque

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zray._private.core import actor_ordering as O
from zray._private.head.actor_manager import ALIVE, DEAD, RESTARTING


class Call:
    def __init__(self, seq: int, retries: int):
        self.seq = seq
        self.task_id = seq.to_bytes(4, "little")
        self.retries_left = retries
        self.ready = False
        self.args_failed = False


class ActorCallOrdering(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.order = O.CallOrder()
        self.calls: list[Call] = []
        self.unresolved: list[Call] = []
        self.epoch = 0
        self.live = None  # address of the running worker, if any
        self.dead = False
        self.channels: dict[str, deque] = {}  # address -> calls on the wire, in order
        self.notices: deque = deque()  # head -> caller, in order
        self.replies: list[bytes] = []  # worker -> caller, any order
        self.executed: dict[str, list] = {}  # address -> seqs run there, in order
        self.finished: dict[int, str] = {}  # seq -> "done" or why it failed

    # ------------------------------------------------------------ the caller's inputs

    def apply(self, instructions):
        for ins in instructions:
            seq = ins.call.seq
            assert seq not in self.finished, f"call {seq} acted on after it finished"
            if type(ins) is O.Send:
                assert ins.address == self.order.address
                self.channels.setdefault(ins.address, deque()).append(ins.call)
            else:
                self.finished[seq] = ins.why

    @rule(retries=st.sampled_from([0, 1, 2, -1]))
    def submit(self, retries):
        call = Call(len(self.calls), retries)
        self.calls.append(call)
        self.unresolved.append(call)
        self.apply(self.order.submit(call))

    @precondition(lambda self: self.unresolved)
    @rule(data=st.data(), fails=st.booleans())
    def resolve(self, data, fails):
        call = data.draw(st.sampled_from(self.unresolved))  # any order, not submission order
        self.unresolved.remove(call)
        self.apply(self.order.resolved(call, fails and call.seq % 5 == 0))

    @precondition(lambda self: self.notices)
    @rule()
    def deliver_notice(self):
        state, address = self.notices.popleft()
        self.apply(self.order.state_changed(state, address))

    @precondition(lambda self: self.replies)
    @rule(data=st.data())
    def deliver_reply(self, data):
        task_id = data.draw(st.sampled_from(self.replies))
        self.replies.remove(task_id)
        self.answer(task_id)

    def answer(self, task_id: bytes):
        # As ActorSubmitter.on_task_done: the first answer (or failure) of a call counts.
        seq = int.from_bytes(task_id, "little")
        if seq not in self.finished:
            self.order.done(task_id)
            self.finished[seq] = "done"

    # ------------------------------------------------------------ the actor and the head

    @precondition(lambda self: self.live is None and not self.dead)
    @rule()
    def actor_starts(self):
        self.epoch += 1
        self.live = f"worker-{self.epoch}"
        self.notices.append((ALIVE, self.live))

    @precondition(lambda self: self.live is not None)
    @rule(tell_restarting=st.booleans())
    def worker_crashes(self, tell_restarting):
        self.channels.pop(self.live, None)  # what it had not run yet is lost
        self.live = None
        if tell_restarting:  # else the caller learns only of the new address
            self.notices.append((RESTARTING, ""))

    @precondition(lambda self: not self.dead)
    @rule()
    def actor_killed(self):
        if self.live is not None:
            self.channels.pop(self.live, None)
        self.live, self.dead = None, True
        self.notices.append((DEAD, ""))

    @precondition(lambda self: self.live is not None and self.channels.get(self.live))
    @rule()
    def actor_runs_next_call(self):
        call = self.channels[self.live].popleft()
        ran_here = self.executed.setdefault(self.live, [])
        ran_here.append(call.seq)
        self.replies.append(call.task_id)
        if self.order.out_of_order:
            return
        ran_here.pop()
        assert not ran_here or ran_here[-1] < call.seq, (
            f"{self.live} ran {call.seq} after {ran_here[-1]}"
        )
        for earlier in self.calls[: call.seq]:
            # Nothing overtakes an earlier call the caller still waits for.
            assert earlier.seq in ran_here or earlier.seq in self.finished, (
                f"{call.seq} ran on {self.live} before pending call {earlier.seq}"
            )
        ran_here.append(call.seq)
        self.replies.append(call.task_id)

    # ------------------------------------------------------------ checks

    @invariant()
    def queued_and_inflight_calls_are_in_submission_order(self):
        inflight = [c.seq for c in self.order.inflight.values()]
        queued = [c.seq for c in self.order.queue]
        if self.order.out_of_order:
            return  # calls sent again after a crash go first: no order to keep
        assert queued == sorted(queued)
        assert inflight == sorted(inflight)
        if self.order.state == ALIVE and inflight and queued:
            assert inflight[-1] < queued[0]

    @invariant()
    def out_of_order_a_ready_call_waits_for_nothing(self):
        if self.order.out_of_order and self.order.state == ALIVE:
            assert all(not call.ready for call in self.order.queue)

    @invariant()
    def every_call_is_in_exactly_one_place(self):
        inflight = {c.seq for c in self.order.inflight.values()}
        queued = {c.seq for c in self.order.queue}
        assert not inflight & queued
        assert not (inflight | queued) & set(self.finished)
        assert inflight | queued | set(self.finished) == set(range(len(self.calls)))

    def teardown(self):
        """Left alone, every call whose arguments resolve ends, exactly once."""
        for call in list(self.unresolved):
            self.unresolved.remove(call)
            self.apply(self.order.resolved(call, False))
        for _ in range(4 * len(self.calls) + 10):
            if len(self.finished) == len(self.calls):
                break
            while self.notices:
                self.deliver_notice()
            if self.live is None and not self.dead:
                self.actor_starts()
                continue
            while self.live is not None and self.channels.get(self.live):
                self.actor_runs_next_call()
            while self.replies:
                self.answer(self.replies.pop(0))
        assert len(self.finished) == len(self.calls), (self.finished, self.order.queue)
        assert self.order.idle


TestActorCallOrdering = ActorCallOrdering.TestCase
TestActorCallOrdering.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


class OutOfOrderActorCalls(ActorCallOrdering):
    """The same world, for an actor that runs calls out of order (async and threaded actors,
    or allow_out_of_order_execution=True): every call still ends exactly once, and a call
    whose arguments are ready is sent at once."""

    def __init__(self):
        super().__init__()
        self.order = O.CallOrder(out_of_order=True)


TestOutOfOrderActorCalls = OutOfOrderActorCalls.TestCase
TestOutOfOrderActorCalls.settings = settings(
    max_examples=100, stateful_step_count=60, deadline=None
)


def test_out_of_order_a_call_resolving_holds_back_nothing():
    order = O.CallOrder(out_of_order=True)
    order.state_changed(ALIVE, "worker-1")
    slow, quick, failing = Call(0, 0), Call(1, 0), Call(2, 0)
    for call in (slow, quick, failing):
        order.submit(call)
    assert [(type(i), i.call.seq) for i in order.resolved(quick, False)] == [(O.Send, 1)]
    assert [(i.why, i.call.seq) for i in order.resolved(failing, True)] == [(O.ARGUMENTS, 2)]
    assert [c.seq for c in order.queue] == [0]
    assert [i.call.seq for i in order.resolved(slow, False)] == [0]


def test_answer_from_a_dead_worker_after_its_call_was_queued_again():
    """The race the state machine finds only now and then, spelled out: the worker ran call 0
    and died; the caller heard RESTARTING (call 0 queued again) before call 0's answer."""
    order = O.CallOrder()
    calls = [Call(0, 1), Call(1, 1)]
    for call in calls:
        order.submit(call)
        order.resolved(call, False)
    sent = order.state_changed(ALIVE, "worker-1")
    assert [(type(i), i.call.seq) for i in sent] == [(O.Send, 0), (O.Send, 1)]
    assert order.state_changed(RESTARTING, "") == []
    assert [c.seq for c in order.queue] == [0, 1]
    assert order.done(calls[0].task_id) is calls[0]  # the late answer ends it here and now
    sent = order.state_changed(ALIVE, "worker-2")
    assert [(i.call.seq, i.address) for i in sent] == [(1, "worker-2")]  # 0 is not run again


def test_after_a_kill_calls_wait_for_the_next_instance_not_a_stale_alive():
    """kill(no_restart=False): the head may have published ALIVE for the instance it is now
    stopping; that message must not send calls to it."""
    order = O.CallOrder()
    order.state_changed(ALIVE, "worker-1", 0)
    inflight, retried = Call(0, 0), Call(1, 1)
    for call in (inflight, retried):
        order.submit(call)
        order.resolved(call, False)
    failed = order.killed(0)
    assert [(type(i), i.why, i.call.seq) for i in failed] == [(O.Fail, O.RETRIES, 0)]
    later = Call(2, 0)
    order.submit(later)
    assert order.resolved(later, False) == []
    assert order.state_changed(ALIVE, "worker-1", 0) == []  # published before the kill
    assert order.state_changed(RESTARTING, "", 1) == []
    sent = order.state_changed(ALIVE, "worker-2", 1)
    assert [(i.call.seq, i.address) for i in sent] == [(1, "worker-2"), (2, "worker-2")]
