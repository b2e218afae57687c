"""The owner's lineage table (zray/_private/core/lineage.py): what is kept, freed and evicted."""

from types import SimpleNamespace

import pytest

from zray import exceptions as X
from zray._private.core.lineage import Lineage
from zray._private.core.memory_store import KIND_INLINE, KIND_PLASMA, Entry


def spec(n: int, size: int = 100, max_retries: int = 3):
    task_id = bytes([n]) * 24
    return SimpleNamespace(
        task_id=task_id,
        max_retries=max_retries,
        frames=[b"x" * size],
        resolved_frames=[],
        oid=task_id + b"\x01\x00\x00\x00",
    )


def plasma(s):
    return [(s.oid, Entry(KIND_PLASMA, (), b"n", 10))]


def test_only_outputs_in_shared_memory_of_retriable_tasks_are_kept():
    lineage = Lineage(max_bytes=10_000)
    inline, no_retries, kept = spec(1), spec(2, max_retries=0), spec(3)
    assert not lineage.keep(inline, [(inline.oid, Entry(KIND_INLINE, [b"v"]))])
    assert not lineage.keep(no_retries, plasma(no_retries))
    assert lineage.keep(kept, plasma(kept))
    assert lineage.spec_for(kept.oid) is kept and lineage.spec_for(inline.oid) is None
    lineage.freed([kept.oid])
    assert lineage.spec_for(kept.oid) is None and lineage.bytes == 0


def test_the_oldest_lineage_goes_first_and_says_so():
    lineage = Lineage(max_bytes=250)
    specs = [spec(i) for i in range(1, 4)]
    for s in specs:
        lineage.keep(s, plasma(s))
    assert lineage.bytes <= 250
    with pytest.raises(X.ObjectReconstructionFailedError, match="LINEAGE_EVICTED"):
        lineage.spec_for(specs[0].oid)
    assert lineage.spec_for(specs[2].oid) is specs[2]


def test_turned_off_it_keeps_nothing_and_says_why():
    lineage = Lineage(max_bytes=10_000, enabled=False)
    s = spec(1)
    assert not lineage.keep(s, plasma(s))
    with pytest.raises(X.ObjectReconstructionFailedError, match="LINEAGE_DISABLED"):
        lineage.spec_for(s.oid)


# ---------------------------------------------------------------- pinning arguments' lineage


class _Core:
    """What lineage_pins.py uses of a core worker."""

    def __init__(self, max_bytes=10_000):
        from zray._private.core.reference_counter import ReferenceCounter

        self.refs = ReferenceCounter("me")
        self.submitter = SimpleNamespace(lineage=Lineage(max_bytes=max_bytes))

    def free(self, oid):
        """Its last holder let go: what core_worker.free_objects does of lineage."""
        from zray._private.core import lineage_pins

        self.refs.add_local(oid)
        self.refs.remove_local_later(oid)
        freed = self.refs.collect().freed
        assert freed == [oid]
        lineage_pins.freed(self, freed)


def task(core, n, args=(), size=100):
    """A finished task of ours with plasma output, made from `args` (earlier tasks)."""
    from zray._private.core import lineage_pins

    s = spec(n, size)
    s.top_refs = [SimpleNamespace(_id=a.oid, _owner="me") for a in args]
    s.lineage_pins = None
    core.refs.add_owned(s.oid)
    assert core.submitter.lineage.keep(s, plasma(s))
    lineage_pins.pin_arguments(core, s)
    return s


def test_a_freed_arguments_lineage_stays_while_a_kept_task_uses_it():
    core = _Core()
    lineage = core.submitter.lineage
    a = task(core, 1)
    b = task(core, 2, [a])
    c = task(core, 3, [b])
    assert [type(r).__name__ for r in c.top_refs] == ["ArgumentRef"]  # not the caller's ref
    core.free(a.oid)
    core.free(b.oid)
    # Their values went (nothing holds them), their lineage did not: c may need them.
    assert not core.refs.owns(a.oid) and lineage.spec_for(a.oid) is a
    assert lineage.spec_for(b.oid) is b and core.refs.lineage_held(b.oid)
    core.free(c.oid)  # c goes: nothing needs b's lineage, nor then a's
    assert lineage.specs == {} and lineage.bytes == 0
    assert not core.refs.lineage_held(a.oid) and core.refs.stats()["lineage_pinned"] == 0


def test_evicting_a_spec_lets_go_of_its_arguments_lineage():
    core = _Core(max_bytes=250)
    lineage = core.submitter.lineage
    a = task(core, 1)
    b = task(core, 2, [a])
    core.free(a.oid)
    assert lineage.spec_for(a.oid) is a
    task(core, 3)  # over the bound: a (the oldest) is evicted
    with pytest.raises(X.ObjectReconstructionFailedError, match="LINEAGE_EVICTED"):
        lineage.spec_for(a.oid)
    assert lineage.spec_for(b.oid) is b
