"""The options `@remote(...)` and `.options(...)` accept, with Ray's names, defaults and errors.

Every option Ray accepts is known here (never a "no such option" error for a valid Ray option).
Those zray does not act on yet are of two kinds: options that do not change what a program
computes (task events, tensor transports) are accepted with a one-time warning; options that
would (a label selector) raise NotImplementedError
naming the option when given anything but their default, because ignoring them would run the
program differently from Ray without saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from zray._private.common import runtime_env as RE
from zray._private.wire.protocol import MAX_NUM_RETURNS

logger = logging.getLogger(__name__)


SUPPORTED, WARN, UNSUPPORTED = "supported", "warn", "unsupported"


@dataclass(frozen=True)
class Option:
    default: object
    types: tuple
    support: str = SUPPORTED


_NUM = (int, float, type(None))

_COMMON = {
    "accelerator_type": Option(None, (str, type(None)), UNSUPPORTED),
    "label_selector": Option(None, (dict, type(None)), UNSUPPORTED),
    "fallback_strategy": Option(None, (list, type(None)), UNSUPPORTED),
    "memory": Option(None, _NUM),
    "name": Option(None, (str, type(None))),
    "num_cpus": Option(1, _NUM),
    "num_gpus": Option(None, _NUM),
    "object_store_memory": Option(None, (int, type(None)), WARN),
    "placement_group": Option("default", (type(None), str, object)),
    "placement_group_bundle_index": Option(-1, (int,)),
    "placement_group_capture_child_tasks": Option(None, (bool, type(None))),
    "resources": Option(None, (dict, type(None))),
    "runtime_env": Option(None, (dict, type(None))),
    "scheduling_strategy": Option(None, (type(None), str, object)),
    "enable_task_events": Option(True, (bool,)),
    "_labels": Option(None, (dict, type(None)), WARN),
}

TASK_OPTIONS = dict(
    _COMMON,
    **{
        "max_calls": Option(0, (int, type(None)), WARN),
        "max_retries": Option(3, (int, type(None))),
        "num_returns": Option(None, (int, str, type(None))),
        "retry_exceptions": Option(False, (bool, list, tuple)),
        "_generator_backpressure_num_objects": Option(None, (int, type(None))),
        "_num_objects_per_yield": Option(1, (int, type(None)), UNSUPPORTED),
    },
)

ACTOR_OPTIONS = dict(
    _COMMON,
    **{
        "num_cpus": Option(None, _NUM),
        "concurrency_groups": Option(None, (list, dict, type(None))),
        "enable_tensor_transport": Option(None, (bool, type(None)), WARN),
        "lifetime": Option(None, (str, type(None))),
        "max_concurrency": Option(None, (int, type(None))),
        "max_restarts": Option(0, (int,)),
        "max_task_retries": Option(0, (int,)),
        "max_pending_calls": Option(-1, (int,)),
        "namespace": Option(None, (str, type(None))),
        "get_if_exists": Option(False, (bool,)),
        "allow_out_of_order_execution": Option(None, (bool, type(None))),
        "_actor_generator_backpressure_num_objects": Option(None, (int, type(None))),
    },
)

_warned: set = set()


def validate(options: dict, table: dict, what: str, in_options_call: bool) -> dict:
    """Checks option names and types the way Ray does; returns the options unchanged."""
    for key, value in options.items():
        spec = table.get(key)
        if spec is None:
            raise ValueError(
                f"Invalid option keyword {key} for {what}. Valid ones are {list(table)}."
            )
        if in_options_call and key == "max_calls":
            raise ValueError("Setting 'max_calls' is not supported in '.options()'.")
        if object not in spec.types and not isinstance(value, spec.types):
            raise TypeError(
                f"The type of keyword '{key}' must be {spec.types}, but received type {type(value)}"
            )
        if isinstance(value, bool) and key in ("num_cpus", "num_gpus", "memory", "max_retries"):
            raise TypeError(f"The type of keyword '{key}' must be a number, but received {value!r}")
        _check_value(key, value)
        if spec.support != SUPPORTED and not asks_for_nothing(value, spec.default):
            check_support(key, spec.support, value)
    return options


def asks_for_nothing(value, default) -> bool:
    if value is None or value is False or value is default:
        return True
    if isinstance(value, (dict, list, tuple, str)) and not value:
        return True
    return type(value) is type(default) and value == default


def check_support(name: str, support: str, value=None):
    """Raises for an option zray cannot honour yet; warns once for one it may ignore."""
    if support == UNSUPPORTED:
        raise NotImplementedError(
            f"zray does not support the option {name!r} yet (given {value!r}); running without "
            "it would not do what Ray does. See 'Differences from Ray' in zray's README."
        )
    if name not in _warned:
        _warned.add(name)
        logger.warning(
            "zray accepts the option %r but does not act on it yet; it does not "
            "change what the program computes",
            name,
        )


def _check_value(key, value):
    if key == "runtime_env":
        RE.parse(value)  # a bad env fails where it is given, as in Ray
    if key in ("num_cpus", "num_gpus", "memory") and value is not None and value < 0:
        raise ValueError(
            f"The keyword '{key}' only accepts None, 0 or a positive number, got {value}"
        )
    if key in ("max_restarts", "max_task_retries", "max_pending_calls") and value < -1:
        raise ValueError(
            f"The keyword '{key}' only accepts None, 0, -1 or a positive integer, where -1 "
            "represents infinity."
        )
    if key == "max_retries" and value is not None and value < -1:
        raise ValueError("The keyword 'max_retries' only accepts -1, 0 or a positive integer.")
    if key == "num_returns" and isinstance(value, int) and value < 0:
        raise ValueError("The keyword 'num_returns' only accepts 0 or a positive integer.")
    if key == "num_returns" and isinstance(value, int) and value > MAX_NUM_RETURNS:
        raise ValueError(f"num_returns={value} is more than zray supports ({MAX_NUM_RETURNS}).")
    if key == "num_returns" and isinstance(value, str) and value not in ("dynamic", "streaming"):
        raise ValueError(
            "The keyword 'num_returns' only accepts 0, a positive integer, "
            "'dynamic' or 'streaming'."
        )
    if key == "resources" and value:
        for name in value:
            if name in ("CPU", "GPU", "memory", "object_store_memory"):
                raise ValueError(
                    f"Use the '{name.lower() if name != 'CPU' else 'num_cpus'}' option instead "
                    f"of resources={{'{name}': ...}}."
                    if name in ("CPU", "GPU")
                    else f"Cannot set resource '{name}' through 'resources'."
                )
    if (
        key == "scheduling_strategy"
        and isinstance(value, str)
        and value not in ("DEFAULT", "SPREAD")
    ):
        raise ValueError(
            f"Invalid scheduling_strategy {value!r}: use 'DEFAULT', 'SPREAD' "
            "or a SchedulingStrategy object."
        )


def resource_request(options: dict, default_cpus: float) -> dict:
    """The resource shape of a task or actor from its options."""
    cpus = options.get("num_cpus")
    shape = {"CPU": default_cpus if cpus is None else cpus}
    if options.get("num_gpus"):
        shape["GPU"] = options["num_gpus"]
    if options.get("memory"):
        shape["memory"] = options["memory"]
    shape.update(options.get("resources") or {})
    return {k: float(v) for k, v in shape.items() if v}
