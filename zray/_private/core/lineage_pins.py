"""Lineage pinning, as Ray does it: a kept task's arguments keep their lineage, not their values.

When a task whose output is in shared memory finishes, its spec is kept (lineage.py) so the
output can be recomputed if lost. Recomputing it needs its arguments, which may be freed by
then (the caller dropped them): so each argument the caller owns is pinned *in lineage*
(ReferenceCounter.add_lineage) for as long as the spec is kept. Its value is freed as soon as
nothing else holds it, as without lineage, but its own spec stays, recursively; a lost output
is recomputed after its freed arguments (TaskSubmitter.reconstruct). The spec stops holding
the caller's ObjectRefs of those arguments (which would hold their values as long as it is
kept): it holds ArgumentRefs.

When a spec goes (all its outputs freed and unused by other kept specs, or evicted past
max_lineage_bytes), its arguments' pins go with it, and the lineage of those already freed
goes too: a worklist, not recursion, since chains can be long.
"""

from __future__ import annotations

from zray._private.core.lineage import ArgumentRef


def pin_arguments(core, spec) -> None:
    """After lineage.keep(spec): pins the lineage of the owned top-level arguments."""
    if spec.lineage_pins is not None:
        return  # kept again after a recomputation: pinned already
    refs = core.refs
    owned = [ref._id for ref in spec.top_refs if refs.owns(ref._id)]
    spec.lineage_pins = owned
    if not owned:
        return
    refs.add_lineage(owned)
    pinned = set(owned)
    spec.top_refs = [
        ArgumentRef(ref._id, ref._owner) if ref._id in pinned else ref for ref in spec.top_refs
    ]


def freed(core, object_ids) -> None:
    """Owned objects whose values were freed: lineage no kept spec uses goes with them."""
    lineage = core.submitter.lineage
    refs = core.refs
    release(core, lineage.freed([oid for oid in object_ids if not refs.lineage_held(oid)]))


def release(core, specs) -> None:
    """`specs` left the lineage: unpins their arguments, and drops the lineage of those no
    kept spec uses any more and whose values are gone already, and so on down the chain."""
    lineage = core.submitter.lineage
    refs = core.refs
    pending = list(specs) + lineage.take_dropped()
    while pending:
        spec = pending.pop()
        pins = getattr(spec, "lineage_pins", None)
        if pins:
            pending += lineage.freed(refs.remove_lineage(pins))
        if not pending:
            pending = lineage.take_dropped()
