"""The `ray start|stop|status` flags that zray has no counterpart for, so Ray habits and scripts
still parse. Each is accepted with Ray's value shape (from `ray <verb> --help`, Ray 2.60). Flags
that only tune Ray's own machinery (ports, dashboard agents, logging style) get a warning naming them;
flags whose effect programs could observe (labels a scheduler would match, system settings,
lineage reconstruction) are refused with an error, since ignoring them would change results.
"""

from __future__ import annotations

import argparse

SWITCH, COUNT = "switch", "count"  # shapes without a value; any other shape is a value type
TUNE, REFUSE, HONOURED = "tune", "refuse", "honoured"

_CLICK_TRUE = ("1", "true", "t", "yes", "y", "on")
_CLICK_FALSE = ("0", "false", "f", "no", "n", "off")


def click_bool(raw: str) -> bool:
    """Click's BOOLEAN: how Ray reads `--include-dashboard=false`."""
    if raw.strip().lower() in _CLICK_TRUE:
        return True
    if raw.strip().lower() in _CLICK_FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{raw!r} is not a valid boolean")


def choice(*names):
    def parse(raw: str) -> str:
        if raw not in names:
            raise argparse.ArgumentTypeError(f"{raw!r} is not one of {', '.join(names)}")
        return raw

    return parse


LOG_FLAGS = {
    "--log-style": (choice("auto", "record", "pretty"), TUNE, "zray does not format its output"),
    "--log-color": (choice("auto", "false", "true"), TUNE, "zray does not color its output"),
    ("-v", "--verbose"): (COUNT, TUNE, "zray has no verbose output"),
}

_NO_AGENT = "zray's dashboard has no per-node agents: it asks the nodes itself"
_NO_PORT = "zray chooses this port itself"

START_FLAGS = {
    "--node-name": (str, TUNE, "nodes are named by their IP address"),
    # With RAY_REDIS_ADDRESS, the head keeps its tables in that Redis (cli.cmd_start).
    "--redis-username": (str, HONOURED, "the user of the Redis in RAY_REDIS_ADDRESS"),
    "--redis-password": (str, HONOURED, "the password of the Redis in RAY_REDIS_ADDRESS"),
    "--redis-shard-ports": (str, TUNE, "zray starts no Redis; it uses one, RAY_REDIS_ADDRESS"),
    "--object-manager-port": (int, TUNE, _NO_PORT),
    "--node-manager-port": (int, TUNE, _NO_PORT),
    "--min-worker-port": (int, TUNE, "workers take any free port"),
    "--max-worker-port": (int, TUNE, "workers take any free port"),
    "--worker-port-list": (str, TUNE, "workers take any free port"),
    # The head runs zray's Ray Client server on it (cli.cmd_start).
    "--ray-client-server-port": (int, HONOURED, "the port of the head's ray:// client server"),
    # --include-dashboard, --dashboard-host and --dashboard-port are zray's own (node.py).
    "--dashboard-agent-listen-port": (int, TUNE, _NO_AGENT),
    "--dashboard-agent-grpc-port": (int, TUNE, _NO_AGENT),
    "--runtime-env-agent-port": (int, TUNE, "zray has no runtime-env agent"),
    "--plasma-directory": (str, TUNE, "objects always live in /dev/shm"),
    "--autoscaling-config": (str, TUNE, "zray has no autoscaler"),
    "--no-redirect-output": (SWITCH, TUNE, "the node's output goes to <session>/logs/node.log"),
    "--metrics-export-port": (int, HONOURED, "served by the node daemon at /metrics"),
    "--no-monitor": (SWITCH, HONOURED, "zray has no autoscaler monitor"),
    "--tracing-startup-hook": (str, TUNE, "zray has no tracing"),
    "--ray-debugger-external": (SWITCH, TUNE, "zray has no Ray debugger"),
    "--disable-usage-stats": (SWITCH, HONOURED, "zray collects no usage stats"),
    "--include-log-monitor": (
        click_bool,
        TUNE,
        "worker output reaches drivers as ZRAY_LOG_TO_DRIVER says",
    ),
    "--enable-resource-isolation": (SWITCH, TUNE, "zray does not use cgroups"),
    "--system-reserved-cpu": (float, TUNE, "zray does not use cgroups"),
    "--system-reserved-memory": (int, TUNE, "zray does not use cgroups"),
    "--cgroup-path": (str, TUNE, "zray does not use cgroups"),
    "--proxy-server-url": (str, TUNE, "zray's dashboard is served directly, behind no proxy"),
    "--labels": (
        str,
        REFUSE,
        "zray nodes carry no labels, so tasks selecting on them would not "
        "be placed as Ray places them",
    ),
    "--labels-file": (
        str,
        REFUSE,
        "zray nodes carry no labels, so tasks selecting on them would "
        "not be placed as Ray places them",
    ),
    "--system-config": (
        str,
        REFUSE,
        "Ray's system settings have no zray counterpart; zray's are ZRAY_* environment variables",
    ),
    "--enable-object-reconstruction": (
        SWITCH,
        REFUSE,
        "zray does not reconstruct lost objects from lineage",
    ),
    **LOG_FLAGS,
}
STOP_FLAGS = dict(LOG_FLAGS)
STATUS_FLAGS = {("-v", "--verbose"): (SWITCH, TUNE, "zray has no verbose status")}


def add_flags(parser: argparse.ArgumentParser, table: dict):
    for names, (shape, _, _) in table.items():
        names = (names,) if isinstance(names, str) else names
        if shape == SWITCH:
            parser.add_argument(*names, action="store_true", default=None, help=argparse.SUPPRESS)
        elif shape == COUNT:
            parser.add_argument(*names, action="count", default=None, help=argparse.SUPPRESS)
        else:
            parser.add_argument(*names, type=shape, default=None, help=argparse.SUPPRESS)


def check_flags(args, table: dict, verb: str, warn) -> str | None:
    """Warns (once each) about the given flags that only tune Ray; returns the error for the
    first given flag zray refuses, if any."""
    for names, (_, kind, why) in table.items():
        flag = names if isinstance(names, str) else names[-1]
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is None or value in ("", "{}") or kind == HONOURED:
            continue
        if kind == REFUSE:
            return f"zray {verb}: {flag} is not supported: {why}"
        warn(f"zray {verb}: ignoring {flag} (accepted for compatibility with `ray {verb}`: {why})")
    return None
