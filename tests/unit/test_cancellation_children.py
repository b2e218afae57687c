"""The children a running task submitted, kept for cancel(recursive=True): what is remembered,
and that keeping the list short stays cheap (zray/_private/core/cancellation.py)."""

from zray._private.core.cancellation import PRUNE_CHILDREN_AT, Cancellations


def test_children_are_remembered_until_the_parent_finishes():
    table = Cancellations()
    table.note_child(b"p", b"c1")
    table.note_child(b"p", b"c2", lambda c: True)
    assert table.children_of(b"p") == [b"c1", b"c2"]
    table.finished(b"p")
    assert table.children_of(b"p") == []


def test_done_children_are_swept_and_pending_ones_kept():
    table = Cancellations()
    done: set = set()
    for i in range(3 * PRUNE_CHILDREN_AT):
        table.note_child(b"p", i.to_bytes(4, "big"), lambda c: c not in done)
        if i % 2:
            done.add(i.to_bytes(4, "big"))
    children = table.children_of(b"p")
    assert not done.intersection(children[: len(children) - PRUNE_CHILDREN_AT])
    assert all(i.to_bytes(4, "big") in children for i in range(0, 3 * PRUNE_CHILDREN_AT, 2))


def test_sweeping_is_amortized_when_answers_trickle_in():
    """A parent submitting 20,000 children whose answers come back a few at a time (an owner
    actor with pipelined tasks): the sweeps look at each child a bounded number of times.
    Sweeping at every power of two looked at ~1,000 per submission here."""
    table = Cancellations()
    pending: set = set()
    looked = [0]

    def still_pending(child):
        looked[0] += 1
        return child in pending

    n = 20_000
    window = PRUNE_CHILDREN_AT - 24  # in flight: just under a power of two, the worst case
    for i in range(n):
        child = i.to_bytes(4, "big")
        pending.add(child)
        table.note_child(b"p", child, still_pending)
        if i >= window:  # from here on one answer arrives per submission
            pending.discard((i - window).to_bytes(4, "big"))
    assert looked[0] <= 4 * n
    assert len(table.children_of(b"p")) <= 2 * PRUNE_CHILDREN_AT + 1
