"""`zray.timeline()` and `zray timeline`: the tasks' runs as a Chrome trace (chrome://tracing,
https://ui.perfetto.dev). The head builds the trace from its task events
(`zray/_private/common/chrome_trace.py`, Ray's `chrome_tracing_dump`) and sends the trace
events only, not every attempt's row with its detail fields.
"""

from __future__ import annotations

import json
import time
from typing import Optional

from zray._private.common.chrome_trace import chrome_tracing_dump  # noqa: F401 (Ray's name)
from zray._private.wire import protocol as P
from zray.util.state import _transport, api


def timeline(filename: Optional[str] = None):
    """Return a list of profiling events that can viewed as a timeline.

    Each task run is a complete event from its start to its end; write them to a file with
    `filename` (then nothing is returned) and open it in chrome://tracing or Perfetto.
    Raises RuntimeError before `init()`, as Ray does."""
    from zray._config import config
    from zray._private.core import runtime

    core = runtime.core
    if core is None:
        raise RuntimeError(
            "Ray has not been started yet. Timeline requires Ray to be initialized first."
        )
    events = core.task_events
    if events.enabled:
        events.flush()
        # Every process sends its events at this interval: what ran until now is then in.
        time.sleep(config.task_events_report_interval_ms / 1000.0 + 0.1)
    trace = dump(None)
    if filename is None:
        return trace
    with open(filename, "w") as out:
        json.dump(trace, out)
    return None


def dump(address: Optional[str], timeout: float = api.DEFAULT_RPC_TIMEOUT) -> list:
    """Every task run the head has events of, as trace events."""
    return _transport.Connection(address).ask_head(P.GetStateTable("timeline"), timeout).rows
