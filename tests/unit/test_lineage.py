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
