"""Which GPUs of a node a lease holds, as Ray assigns them: whole GPUs for whole amounts, one
shared GPU for a fraction. No I/O (tests/unit/test_instances.py).

The scheduler's totals say how much GPU is free; these ids say which. They can disagree when
fractions are spread out (0.5 free on each of two GPUs is 1.0 free, but no whole GPU), so a
request is granted only when `assign` finds instances for it.
"""

from __future__ import annotations

from zray._private.common.resources import UNIT

GPU = "GPU"


class GpuInstances:
    def __init__(self, total_units: int):
        self.free = [UNIT] * (total_units // UNIT)  # per GPU index, in resource units

    def assign(self, units: int) -> list[int] | None:
        """GPU ids for a request of `units`, taken from the free amounts; None if it does not
        fit. A whole amount takes that many entirely free GPUs (lowest ids first); a fraction
        takes the fullest GPU it fits on, so whole GPUs stay free for whole requests."""
        if units <= 0 or not self.free:
            return []
        if units >= UNIT:
            whole = [i for i, free in enumerate(self.free) if free == UNIT][: units // UNIT]
            if len(whole) < units // UNIT:
                return None
            for i in whole:
                self.free[i] = 0
            return whole
        fitting = [i for i, free in enumerate(self.free) if free >= units]
        if not fitting:
            return None
        best = min(fitting, key=lambda i: (self.free[i], i))
        self.free[best] -= units
        return [best]

    def release(self, ids: list[int], units: int) -> None:
        """Gives back what `assign(units)` returned as `ids`."""
        share = UNIT if units >= UNIT else units
        for i in ids:
            self.free[i] = min(UNIT, self.free[i] + share)
