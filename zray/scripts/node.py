"""`zray-node`: runs one node daemon in the foreground (for systemd, containers and tests).

Flags mirror `ray start` so habits carry over; `zray start` (zray.scripts.cli) runs the same
daemon in the background.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from zray.scripts.ray_flags import click_bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zray-node", description=__doc__.splitlines()[0])
    add_node_flags(parser)
    parser.add_argument("--session-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--embedded-by", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--ready-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log-to-session", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--metrics-export-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port at /metrics (0: any free port; "
        "default: ZRAY_METRICS_EXPORT_PORT, -1 for none)",
    )
    return parser


def add_node_flags(parser: argparse.ArgumentParser):
    parser.add_argument("--head", action="store_true", help="start the head service on this node")
    parser.add_argument(
        "--port", type=int, default=None, help="port of the head service (head only; default 6380)"
    )
    parser.add_argument("--address", default=None, help="head address (host:port) to join")
    parser.add_argument("--num-cpus", type=float, default=None, help="CPUs of this node")
    parser.add_argument("--num-gpus", type=float, default=None, help="GPUs of this node")
    parser.add_argument(
        "--resources", default=None, help="custom resources as JSON, e.g. '{\"w1\": 1}'"
    )
    parser.add_argument(
        "--object-store-memory",
        type=int,
        default=None,
        help="bytes of shared memory for objects (default 30%% of RAM)",
    )
    parser.add_argument(
        "--node-ip-address", default="127.0.0.1", help="IP address this node binds and advertises"
    )
    parser.add_argument(
        "--token",
        default=None,
        help="cluster token (default: ZRAY_TOKEN; a head generates one). "
        "ZRAY_TOKEN keeps it out of the process list",
    )
    parser.add_argument(
        "--head-state-path",
        default=None,
        help="SQLite file (or directory) the head keeps its tables in (head "
        "only; default: in its session directory; RAY_REDIS_ADDRESS "
        "selects a Redis instead)",
    )
    parser.add_argument(
        "--include-dashboard",
        type=click_bool,
        default=None,
        help="start the web dashboard (head only; default: yes, unless its port is taken; "
        "true makes a taken port an error)",
    )
    parser.add_argument(
        "--dashboard-host",
        default=None,
        help="address the dashboard listens on (default 127.0.0.1; 0.0.0.0 for every "
        "interface: it asks for the cluster token either way)",
    )
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help="port of the dashboard (default 8265, or the next free one of the 50 after it)",
    )
    parser.add_argument(
        "--encrypt",
        action="store_true",
        default=None,
        help="encrypt every connection (CURVE); joining nodes and drivers "
        "follow the head (default: ZRAY_ENCRYPT)",
    )


def options_from_args(args):  # -> node.options.NodeOptions (imported late: lean start)
    from zray._config import config
    from zray._private.wire import security
    from zray._private.common import session
    from zray._private.node.options import NodeOptions

    if not args.head and not args.address:
        raise SystemExit("zray-node: give --head to start a cluster or --address to join one")
    resources = None
    if args.resources:
        try:
            resources = json.loads(args.resources)
        except ValueError as exc:
            raise SystemExit(f"--resources is not valid JSON: {exc}")
        if not isinstance(resources, dict):
            raise SystemExit("--resources must be a JSON object such as '{\"w1\": 1}'")
    head_address = ""
    if args.address:
        head_address = args.address if "://" in args.address else "tcp://" + args.address
    token = args.token or config.token
    if not token and not args.head:
        token = local_token(head_address)
    token_generated = not token
    if not token:
        if not args.head:
            raise SystemExit(
                "zray-node: joining a cluster needs its token: give --token=TOKEN or set "
                "ZRAY_TOKEN (`zray start --head` printed it; it is also in the head's session "
                "directory, file 'token'). A node on the head's machine finds it by itself."
            )
        token = security.new_token()
    session.clean_stale_sessions()
    return NodeOptions(
        session_dir=args.session_dir or session.new_session_dir(),
        head=args.head,
        head_address=head_address,
        head_port=args.port if args.port is not None else (config.head_port if args.head else 0),
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        resources=resources,
        object_store_memory=args.object_store_memory,
        node_ip=args.node_ip_address,
        embedded_by=args.embedded_by,
        token=token,
        token_generated=token_generated,
        encrypt=config.encrypt if args.encrypt is None else args.encrypt,
        metrics_export_port=(
            config.metrics_export_port
            if args.metrics_export_port is None
            else args.metrics_export_port
        ),
        include_dashboard=args.include_dashboard if args.head else False,
        dashboard_host=args.dashboard_host or "127.0.0.1",
        dashboard_port=args.dashboard_port,
    )


def local_token(head_address: str) -> str:
    """The token of the cluster at `head_address` if a node of this machine holds it (the head
    itself, or a node joined before): as for drivers, same-host joins need no --token."""
    from zray._private.common import cluster_record

    # Only for the exact address a head recorded: a mistyped address may be anyone's host.
    creds = cluster_record.local_credentials(head_address, exact=True)
    return creds.token if creds is not None else ""


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from zray._private.node.daemon import run_node

    opts = options_from_args(args)
    if args.head_state_path:
        import os

        from zray._config import config

        config.head_state_path = os.path.abspath(args.head_state_path)
    if not args.ready_json:
        print(f"zray-node: session {opts.session_dir}", file=sys.stderr)
    from zray._private.head.store import StoreError
    from zray._private.node.metrics_table import MetricsPortError
    from zray._private.node.dashboard_process import DashboardPortError
    from zray._private.wire.security import AuthenticationError

    try:
        run_node(opts, sys.stdout if args.ready_json else None, log_to_session=args.log_to_session)
    except StoreError as exc:
        print(f"zray-node: the head cannot keep its state: {exc}", file=sys.stderr)
        return 1
    except (MetricsPortError, DashboardPortError) as exc:
        print(f"zray-node: {exc}", file=sys.stderr)
        return 1
    except (AuthenticationError, ConnectionError) as exc:
        where = "" if opts.head else f"cannot join the cluster at {opts.head_address}: "
        print(f"zray-node: {where}{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
