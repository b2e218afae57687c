"""`zray logs`: Ray's `ray logs [cluster|actor|worker|task|job] ...` over zray's nodes.

`zray logs [GLOB]` (`cluster` implied) lists the head node's log files matching GLOB, or prints
the one that matches; `actor --id ID` and `worker --pid PID` print a worker's stdout (stderr
with `--err`); `job --id SUBMISSION_ID` a submitted job's driver output. `--tail N` (default 1000, -1 for all), `--follow` streams appended lines until
interrupted.
"""

from __future__ import annotations

import argparse
import sys

VERBS = ("cluster", "actor", "worker", "task", "job")
DEFAULT_LOG_LIMIT = 1000  # Ray's default --tail


def add_parser(commands):
    logs = commands.add_parser(
        "logs",
        help="print or list the cluster's log files (ray logs)",
        description=__doc__.splitlines()[0],
    )
    logs.add_argument(
        "target", nargs="?", default=None, help=f"one of {', '.join(VERBS)}, or a glob"
    )
    logs.add_argument("glob_filter", nargs="?", default=None, help="glob of log file names")
    logs.add_argument(
        "-a", "--id", dest="id", default=None, help="actor id (actor), submission id (job)"
    )
    logs.add_argument("-pid", "--pid", dest="pid", default=None, help="pid of the worker")
    logs.add_argument("-id", "--node-id", dest="node_id", default=None, help="node id")
    logs.add_argument("-ip", "--node-ip", dest="node_ip", default=None, help="node ip address")
    logs.add_argument("-f", "--follow", action="store_true", help="stream appended lines")
    logs.add_argument("--tail", type=int, default=DEFAULT_LOG_LIMIT, help="lines to show; -1: all")
    logs.add_argument("--timeout", type=int, default=30, help="seconds for each request")
    logs.add_argument("--err", action="store_true", help="the worker's stderr, not its stdout")
    logs.add_argument("--address", default=None, help="the cluster (default: this machine's)")
    logs.add_argument("--encoding", default="utf-8")
    logs.add_argument("--encoding-errors", default="strict")
    logs.add_argument("--attempt-number", type=int, default=0, help=argparse.SUPPRESS)
    logs.add_argument("--submission-id", default=None, help=argparse.SUPPRESS)
    logs.add_argument("--interval", type=float, default=None, help=argparse.SUPPRESS)


def main(args) -> int:
    from zray.util.state.exception import RayStateApiException

    verb, glob = args.target, args.glob_filter
    if verb not in VERBS:  # `zray logs GLOB` is `zray logs cluster GLOB`, as in Ray
        verb, glob = "cluster", args.target
    elif verb != "cluster" and glob is not None:
        print(f"zray logs {verb}: unexpected argument {glob!r}", file=sys.stderr)
        return 2
    try:
        if verb == "cluster":
            return _cluster(args, glob)
        if verb == "task":
            print(
                "zray logs task is not supported: zray has no task log offsets; "
                "use `zray logs actor --id` or `zray logs worker --pid`",
                file=sys.stderr,
            )
            return 2
        if verb == "job":
            if not args.id:
                print("zray logs job: --id (the submission id) is required", file=sys.stderr)
                return 2
            return _print(args, submission_id=args.id)
        if verb == "actor" and not (args.id or args.pid):
            print("zray logs actor: give --id or --pid", file=sys.stderr)
            return 2
        if verb == "worker" and not args.pid:
            print("zray logs worker: --pid is required", file=sys.stderr)
            return 2
        return _print(
            args,
            actor_id=args.id if verb == "actor" else None,
            pid=int(args.pid) if args.pid else None,
            suffix="err" if args.err else "out",
        )
    except (RayStateApiException, ValueError) as exc:
        print(f"zray logs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the end of --follow
        return 0
    except BrokenPipeError:  # `zray logs ... | head`: the reader has what it wanted
        import os

        # The exit's flush of stdout would fail again: let it write to nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _cluster(args, glob) -> int:
    from zray.scripts.state_cli import to_yaml
    from zray.util.state.logs import list_logs

    node_ip = args.node_ip
    if args.node_id is None and node_ip is None:
        node_ip = _head_ip(args)
    logs = list_logs(args.address, args.node_id, node_ip, glob, args.timeout)
    found = [name for names in logs.values() for name in names]
    if len(found) != 1:
        print(f"Node ID: {args.node_id}" if args.node_id else f"Node IP: {node_ip}")
        print("---\n" + to_yaml(logs) + "...")
        return 0
    return _print(args, filename=found[0], node_ip=node_ip)


def _head_ip(args) -> str:
    from zray.util.state._transport import Connection
    from zray.util.state.logs import _node

    return _node(Connection(args.address), None, None, args.timeout)["node_ip"]


def _print(args, node_ip=None, **which) -> int:
    from zray.util.state.logs import get_log

    if args.tail > 0:
        print(
            f"--- Log has been truncated to last {args.tail} lines."
            " Use `--tail` flag to toggle. Set to -1 for getting the entire file. ---\n"
        )
    for chunk in get_log(
        address=args.address,
        node_id=args.node_id,
        node_ip=node_ip or args.node_ip,
        follow=args.follow,
        tail=args.tail,
        timeout=args.timeout,
        encoding=args.encoding,
        errors=args.encoding_errors,
        _interval=args.interval,
        **which,
    ):
        print(chunk, end="", flush=True)
    return 0
