"""An actor's states, with Ray's names: the head's actor table moves an actor through them and
every caller's handle reacts to them, so they live below both."""

from __future__ import annotations

PENDING, ALIVE, RESTARTING, DEAD = "PENDING", "ALIVE", "RESTARTING", "DEAD"
