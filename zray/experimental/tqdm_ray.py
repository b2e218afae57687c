"""Progress bars from tasks and actors, drawn once on the driver: Ray's `ray.experimental.tqdm_ray`.

In a worker, `tqdm` prints its state as one JSON line carrying `RAY_TQDM_MAGIC` (at most once per
`flush_interval_s`, and at `close()`); the line travels with the worker's output to the driver,
which hands it here instead of printing it, and draws every bar with the real tqdm at its own
position. Used in the driver itself, the bar is drawn directly.
"""

from __future__ import annotations

import builtins
import copy
import json
import logging
import os
import sys
import threading
import time
import uuid
from typing import Any, Dict, Iterable, Optional

try:
    import tqdm.auto as real_tqdm
except ImportError:  # pragma: no cover - tqdm is a dependency of zray
    real_tqdm = None

logger = logging.getLogger(__name__)

ProgressBarState = Dict[str, Any]

# Ray's token: a line carrying it is a bar's state, not output.
RAY_TQDM_MAGIC = "__ray_tqdm_magic_token__"

_manager: Optional["_BarManager"] = None
_mgr_lock = threading.Lock()
_warned_decode = False
_print = builtins.print
_DIM_CYAN, _RESET = "\x1b[2m\x1b[36m", "\x1b[0m"  # colorama's Style.DIM + Fore.CYAN, RESET_ALL


def safe_print(*args, **kwargs):
    """`print` that does not tear progress bars: they are cleared, the text printed, and the
    bars drawn again. Replaces `builtins.print` once bars are drawn (ZRAY_TQDM_PATCH_PRINT=0 or
    RAY_TQDM_PATCH_PRINT=0 to keep the builtin)."""
    if kwargs.get("file") not in [sys.stdout, sys.stderr, None]:
        return _print(*args, **kwargs)
    try:
        instance().hide_bars()
        _print(*args, **kwargs)
    finally:
        instance().unhide_bars()


def _in_worker() -> bool:
    from zray._private.core import runtime
    from zray._private.core.core_worker import WORKER

    core = runtime.core
    return core is not None and core.mode == WORKER


def _node_ip() -> str:
    from zray.util.cluster_queries import get_node_ip_address

    return get_node_ip_address()


class tqdm:
    """Experimental: a tqdm usable in any task or actor, drawn centrally by the driver.

    Supports a subset of tqdm's arguments.
    """

    DEFAULT_FLUSH_INTERVAL_SECONDS = 1.0

    def __init__(
        self,
        iterable: Optional[Iterable] = None,
        desc: Optional[str] = None,
        total: Optional[int] = None,
        unit: Optional[str] = None,
        position: Optional[int] = None,
        flush_interval_s: Optional[float] = None,
    ):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self._desc = desc or ""
        self._total = total
        self._unit = unit or "it"
        self._ip = _node_ip()
        self._pid = os.getpid()
        self._pos = position or 0
        self._uuid = uuid.uuid4().hex
        self._x = 0
        self._closed = False
        self._flush_interval_s = (
            flush_interval_s
            if flush_interval_s is not None
            else self.DEFAULT_FLUSH_INTERVAL_SECONDS
        )
        self._last_flush_time = 0.0

    def set_description(self, desc):
        """Implements tqdm.tqdm.set_description."""
        self._desc = desc
        self._dump_state()

    def update(self, n=1):
        """Implements tqdm.tqdm.update."""
        self._x += n
        self._dump_state()

    def close(self):
        """Implements tqdm.tqdm.close."""
        self._closed = True
        self._dump_state(force_flush=True)

    def refresh(self):
        """Implements tqdm.tqdm.refresh."""
        self._dump_state()

    @property
    def total(self) -> Optional[int]:
        return self._total

    @total.setter
    def total(self, total: int):
        self._total = total

    @property
    def n(self) -> int:
        return self._x

    @n.setter
    def n(self, n: int):
        self._x = n

    def _dump_state(self, force_flush=False) -> None:
        now = time.time()
        if not force_flush and now - self._last_flush_time < self._flush_interval_s:
            return
        self._last_flush_time = now
        if _in_worker():
            # One write with its newline, so no other output splits the line.
            print(json.dumps(self._get_state()) + "\n", end="")
        else:
            instance().process_state_update(copy.deepcopy(self._get_state()))

    def _get_state(self) -> ProgressBarState:
        return {
            "__magic_token__": RAY_TQDM_MAGIC,
            "x": self._x,
            "pos": self._pos,
            "desc": self._desc,
            "total": self._total,
            "unit": self._unit,
            "ip": self._ip,
            "pid": self._pid,
            "uuid": self._uuid,
            "closed": self._closed,
        }

    def __iter__(self):
        if self._iterable is None:
            raise ValueError("No iterable provided")
        for x in iter(self._iterable):
            self.update(1)
            yield x


class _Bar:
    """One progress bar on the driver, at position pos_offset + its own position."""

    def __init__(self, state: ProgressBarState, pos_offset: int):
        self.state = state
        self.pos_offset = pos_offset
        self.bar = real_tqdm.tqdm(
            desc=state["desc"],
            total=state["total"],
            unit=state["unit"],
            position=pos_offset + state["pos"],
            dynamic_ncols=True,
            unit_scale=True,
        )
        if state["x"]:
            self.bar.update(state["x"])

    def update(self, state: ProgressBarState) -> None:
        if state["desc"] != self.state["desc"]:
            self.bar.set_description(state["desc"])
        if state["total"] != self.state["total"]:
            self.bar.total = state["total"]
            self.bar.refresh()
        delta = state["x"] - self.state["x"]
        if delta:
            self.bar.update(delta)
        self.bar.refresh()
        self.state = state

    def close(self):
        self.bar.close()

    def update_offset(self, pos_offset: int) -> None:
        if pos_offset != self.pos_offset:
            self.pos_offset = pos_offset
            self.bar.clear()
            self.bar.pos = -(pos_offset + self.state["pos"])
            self.bar.refresh()


class _BarGroup:
    """The bars of one worker process, sharing its position offset."""

    def __init__(self, ip, pid, pos_offset):
        self.ip = ip
        self.pid = pid
        self.pos_offset = pos_offset
        self.bars_by_uuid: Dict[str, _Bar] = {}

    def has_bar(self, bar_uuid) -> bool:
        return bar_uuid in self.bars_by_uuid

    def allocate_bar(self, state: ProgressBarState) -> None:
        self.bars_by_uuid[state["uuid"]] = _Bar(state, self.pos_offset)

    def update_bar(self, state: ProgressBarState) -> None:
        self.bars_by_uuid[state["uuid"]].update(state)

    def close_bar(self, state: ProgressBarState) -> None:
        bar = self.bars_by_uuid[state["uuid"]]
        # Hidden while closing, so the last bar does not flash when several close in a row.
        instance().hide_bars()
        bar.close()
        del self.bars_by_uuid[state["uuid"]]
        instance().unhide_bars()

    def slots_required(self):
        if not self.bars_by_uuid:
            return 0
        return 1 + max(bar.state["pos"] for bar in self.bars_by_uuid.values())

    def update_offset(self, offset: int) -> None:
        if offset != self.pos_offset:
            self.pos_offset = offset
            for bar in self.bars_by_uuid.values():
                bar.update_offset(offset)

    def hide_bars(self) -> None:
        for bar in self.bars_by_uuid.values():
            bar.bar.clear()

    def unhide_bars(self) -> None:
        for bar in self.bars_by_uuid.values():
            bar.bar.refresh()


class _BarManager:
    """The driver's bars, grouped by process and stacked so none overlaps another."""

    def __init__(self):
        self.ip = _node_ip()
        self.pid = os.getpid()
        self.bar_groups: dict = {}
        self.in_hidden_state = False
        self.num_hides = 0
        self.lock = threading.RLock()
        # Notebooks draw tqdm as widgets, where escape codes would show as text.
        self.should_colorize = "ipykernel" not in sys.modules

    def process_state_update(self, state: ProgressBarState) -> None:
        """Applies one bar's state, creating the bar on first sight."""
        with self.lock:
            self._process_state_update_locked(state)

    def _process_state_update_locked(self, state: ProgressBarState) -> None:
        if not real_tqdm:
            logger.warning("tqdm is not installed. Progress bars will be disabled.")
            return
        if state["ip"] == self.ip:
            prefix = "" if state["pid"] == self.pid else f"(pid={state.get('pid')}) "
        else:
            prefix = f"(pid={state.get('pid')}, ip={state.get('ip')}) "
        if prefix and self.should_colorize:
            prefix = f"{_DIM_CYAN}{prefix}{_RESET}"
        state["desc"] = prefix + state["desc"]
        process = self._get_or_allocate_bar_group(state)
        if process.has_bar(state["uuid"]):
            process.update_bar(state)  # the last update before closing too
            if state["closed"]:
                process.close_bar(state)
                self._update_offsets()
        else:
            process.allocate_bar(state)
            self._update_offsets()

    def hide_bars(self) -> None:
        with self.lock:
            if not self.in_hidden_state:
                self.in_hidden_state = True
                self.num_hides += 1
                for group in self.bar_groups.values():
                    group.hide_bars()

    def unhide_bars(self) -> None:
        with self.lock:
            if self.in_hidden_state:
                self.in_hidden_state = False
                for group in self.bar_groups.values():
                    group.unhide_bars()

    def _get_or_allocate_bar_group(self, state: ProgressBarState):
        key = (state["ip"], state["pid"])
        if key not in self.bar_groups:
            offset = sum(p.slots_required() for p in self.bar_groups.values())
            self.bar_groups[key] = _BarGroup(state["ip"], state["pid"], offset)
        return self.bar_groups[key]

    def _update_offsets(self):
        offset = 0
        for proc in self.bar_groups.values():
            proc.update_offset(offset)
            offset += proc.slots_required()


def instance() -> _BarManager:
    """This process's bar manager, created on first use."""
    global _manager
    with _mgr_lock:
        if _manager is None:
            from zray._config import config

            _manager = _BarManager()
            if config.tqdm_patch_print:
                builtins.print = safe_print
        return _manager


def take_progress_lines(lines: list) -> list:
    """The driver's filter of a worker's output: draws the bar states among `lines` and returns
    the other lines, to be printed."""
    rest = []
    for line in lines:
        if RAY_TQDM_MAGIC not in line:
            rest.append(line)
            continue
        try:
            instance().process_state_update(json.loads(line))
        except (ValueError, KeyError, TypeError):
            global _warned_decode
            if _warned_decode:
                continue
            _warned_decode = True
            logger.warning(
                "[tqdm_ray] Failed to decode %s, this may be due to logging too fast. "
                "This warning will not be printed again.",
                line,
            )
    return rest


def drawing() -> Optional["_BarManager"]:
    """The bar manager if bars are drawn in this process (to clear them around other output)."""
    return _manager
