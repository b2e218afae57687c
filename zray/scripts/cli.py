"""`zray start | stop | status | memory | list | get | summary | timeline | logs`: the cluster CLI, with `ray`'s flags so habits carry over.

This module only parses options and starts or signals daemons; the daemon is zray-node.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from zray._private.common.launch import daemon_command
from zray.scripts import job_cli, logs_cli, memory, ray_flags, state_cli
from zray.scripts.node import add_node_flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zray", description="Manage zray clusters.")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="start a node daemon on this machine")
    add_node_flags(start)
    start.add_argument("--block", action="store_true", help="run in the foreground")
    start.add_argument(
        "--temp-dir",
        default=None,
        help="root of this node's session directories (default: "
        "ZRAY_SESSION_DIR_ROOT); drivers and nodes of this machine still "
        "find the cluster",
    )
    start.add_argument(
        "--memory",
        type=int,
        default=None,
        help="bytes of the 'memory' resource tasks and actors may reserve",
    )
    start.add_argument(
        "--object-spilling-directory",
        default=None,
        help="where this node spills objects (default: ZRAY_SPILL_DIR)",
    )
    ray_flags.add_flags(start, ray_flags.START_FLAGS)

    stop = commands.add_parser("stop", help="stop this machine's node daemons")
    stop.add_argument("-f", "--force", action="store_true", help="kill with SIGKILL")
    stop.add_argument(
        "-g",
        "--grace-period",
        type=int,
        default=16,
        help="seconds to wait before killing (default 16)",
    )
    ray_flags.add_flags(stop, ray_flags.STOP_FLAGS)

    status = commands.add_parser("status", help="show the cluster's nodes and resources")
    status.add_argument("--address", default=None, help="head address (default: the local one)")
    ray_flags.add_flags(status, ray_flags.STATUS_FLAGS)

    memory.add_parser(commands)
    state_cli.add_parsers(commands)
    timeline = commands.add_parser(
        "timeline", help="Take a Chrome tracing timeline for a zray cluster."
    )
    timeline.add_argument(
        "--address", required=False, type=str, help="Override the address to connect to."
    )
    logs_cli.add_parser(commands)
    job_cli.add_parser(commands)
    state_cli.add_version_flag(parser)
    return parser


FLAG_TABLES = {
    "start": ray_flags.START_FLAGS,
    "stop": ray_flags.STOP_FLAGS,
    "status": ray_flags.STATUS_FLAGS,
}


def main(argv=None) -> int:
    import zmq

    args = build_parser().parse_args(argv)
    refused = ray_flags.check_flags(
        args,
        FLAG_TABLES.get(args.command, {}),
        args.command,
        lambda line: print(line, file=sys.stderr),
    )
    if refused:
        print(refused, file=sys.stderr)
        return 2
    try:
        return {
            "start": cmd_start,
            "stop": cmd_stop,
            "status": cmd_status,
            "memory": memory.cmd_memory,
            "list": state_cli.main,
            "get": state_cli.main,
            "summary": state_cli.main,
            "timeline": cmd_timeline,
            "logs": logs_cli.main,
            "job": job_cli.main,
        }[args.command](args)
    except (OSError, zmq.ZMQError) as exc:  # ConnectionError is an OSError: no cluster there
        print(f"zray {args.command}: {exc}", file=sys.stderr)
        return 1


def cmd_timeline(args) -> int:
    """Ray's `ray timeline`: the trace goes to a file in the temp directory (the session
    root), named by the time."""
    from datetime import datetime

    from zray._config import config
    from zray.util.state import timeline
    from zray.util.state.exception import RayStateApiException

    try:
        trace = timeline.dump(args.address)
    except RayStateApiException as exc:
        print(f"zray timeline: {exc}", file=sys.stderr)
        return 1
    stamp = datetime.today().strftime("%Y-%m-%d_%H-%M-%S")
    os.makedirs(config.session_dir_root, exist_ok=True)
    filename = os.path.join(config.session_dir_root, f"zray-timeline-{stamp}.json")
    with open(filename, "w") as out:
        json.dump(trace, out)
    print(f"Trace file written to {filename} in the zray temp directory.")
    print("You can open this with chrome://tracing in the Chrome browser.")
    return 0


def cmd_start(args) -> int:
    from zray._config import config, environment_for_children
    from zray._private.common import cluster_record

    if not args.head and not args.address:
        print(
            "zray start: give --head to start a cluster or --address=HOST:PORT to join one",
            file=sys.stderr,
        )
        return 2
    if not args.head:
        for flag in (
            "port",
            "redis_shard_ports",
            "include_dashboard",  # Ray's head-only flags
            "head_state_path",
        ):
            if getattr(args, flag) is not None:
                print(
                    f"zray start: --{flag.replace('_', '-')} should only be specified when "
                    f"starting head node with `--head`.",
                    file=sys.stderr,
                )
                return 2
    if args.address == "auto":  # as `ray start --address=auto`: the cluster this machine knows
        from zray._private.common.cluster_info import resolve_address

        args.address = resolve_address("auto").replace("tcp://", "")
    cmd = daemon_command("zray.scripts.node") + ["--ready-json"]
    for flag in ("head", "encrypt"):
        if getattr(args, flag):
            cmd.append("--" + flag)
    if args.memory is not None:
        resources = _json_object(args.resources)
        if resources is None:
            return 2
        args.resources = json.dumps({**resources, "memory": args.memory})
    for flag in (
        "port",
        "address",
        "num_cpus",
        "num_gpus",
        "resources",
        "object_store_memory",
        "node_ip_address",
        "head_state_path",
        "metrics_export_port",
        "include_dashboard",
        "dashboard_host",
        "dashboard_port",
    ):
        value = getattr(args, flag)
        if value is not None:
            cmd += ["--" + flag.replace("_", "-"), str(value)]
    extra = {}
    token = args.token or config.token
    if not token and args.address:
        # Found here, not by the daemon: with --temp-dir it looks under another root.
        creds = cluster_record.local_credentials(args.address, exact=True)
        token = creds.token if creds is not None else None
    if token:
        extra["ZRAY_TOKEN"] = token  # by environment: argv is readable by every local user (ps)
    roots = [config.session_dir_root]
    if args.temp_dir:
        temp_dir = os.path.abspath(args.temp_dir)
        extra["ZRAY_SESSION_DIR_ROOT"] = temp_dir
        cluster_record.remember_temp_dir(config.session_dir_root, temp_dir)
        roots.append(temp_dir)
    if args.head:
        # By environment, as the token: argv is readable by every local user.
        if args.redis_password:
            extra["ZRAY_REDIS_PASSWORD"] = args.redis_password
        if args.redis_username:
            extra["ZRAY_REDIS_USERNAME"] = args.redis_username
    elif args.redis_password or args.redis_username:
        print(
            "zray start: ignoring --redis-password/--redis-username: only the head uses "
            "Redis (RAY_REDIS_ADDRESS)",
            file=sys.stderr,
        )
    if args.ray_client_server_port is not None and not args.head:
        print(
            "zray start: ignoring --ray-client-server-port: only the head runs the client server",
            file=sys.stderr,
        )
        args.ray_client_server_port = None
    if args.object_spilling_directory:
        extra["ZRAY_SPILL_DIR"] = os.path.abspath(args.object_spilling_directory)
    env = environment_for_children(extra)
    if args.block:
        return _run_blocking(cmd, env, roots, args.ray_client_server_port)
    import tempfile

    # Until the node has its session directory, its errors go to a scratch file we show on
    # failure; once ready it logs into <session>/logs/node.log.
    with tempfile.TemporaryFile() as early_log:
        process = subprocess.Popen(
            cmd + ["--log-to-session"],
            stdout=subprocess.PIPE,
            stderr=early_log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        line = process.stdout.readline()
        process.stdout.close()
        if not line:
            early_log.seek(0)
            sys.stderr.write(early_log.read().decode(errors="replace"))
            print("zray start: the node failed to start", file=sys.stderr)
            return 1
    info = json.loads(line)
    _started(info, args.head, roots)
    if args.ray_client_server_port is not None:
        return 0 if start_client_server(info, args.ray_client_server_port, env) else 1
    return 0


def start_client_server(info: dict, port: int, env: dict) -> bool:
    """Starts the head's ray:// client server (zray/util/client/server/) on `port`, a process
    of its own that ends with the head node."""
    from zray._private.common.launch import module_command

    cmd = module_command("zray.util.client.server") + [
        "--port",
        str(port),
        "--address",
        info["head_address"].replace("tcp://", ""),
        "--session-dir",
        info["session_dir"],
        "--node-pid",
        str(info["pid"]),
        "--ready-json",
        "--log-file",
        os.path.join(info["session_dir"], "logs", "client_server.log"),
    ]
    log = open(cmd[-1], "ab")
    with log:
        process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    line = process.stdout.readline()
    process.stdout.close()
    if not line:
        print(
            f"zray start: the ray:// client server failed to start on port {port} (see "
            f"{os.path.join(info['session_dir'], 'logs', 'client_server.log')})",
            file=sys.stderr,
        )
        return False
    head_ip = info["head_address"].replace("tcp://", "").rsplit(":", 1)[0]
    print(f"Ray Client server on port {port}: zray.init('ray://{head_ip}:{port}')")
    return True


def _json_object(raw):
    try:
        value = json.loads(raw) if raw else {}
    except ValueError as exc:
        print(f"zray start: --resources is not valid JSON: {exc}", file=sys.stderr)
        return None
    if not isinstance(value, dict):
        print(
            "zray start: --resources must be a JSON object such as '{\"w1\": 1}'", file=sys.stderr
        )
        return None
    return value


def _run_blocking(cmd: list, env: dict, roots: list, client_server_port=None) -> int:
    """Runs the node in the foreground (its log on our stderr) until it ends or Ctrl-C."""
    from zray._private.common import cluster_record

    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    line = process.stdout.readline()
    process.stdout.close()
    if not line:
        return process.wait() or 1
    info = json.loads(line)
    _started(info, "--head" in cmd, roots)
    if client_server_port is not None:
        start_client_server(info, client_server_port, env)
    # Ctrl-C reaches the node too (same process group); a service manager's SIGTERM only us.
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:  # a terminal's Ctrl-C reached the node too; a lone kill -INT not
        process.send_signal(signal.SIGINT)
        return process.wait()
    finally:
        # As `zray stop` would: a stopped daemon leaves its session for others to remove.
        from zray._private.common import session

        session.remove_session(info["session_dir"])
        for root in roots:
            record = cluster_record.read(root)
            if record is None or record.session_dir == info["session_dir"]:
                cluster_record.clear(root)


def _started(info: dict, head_node: bool, roots: list):
    from zray._private.common import cluster_record
    from zray._private.wire import security

    head = info["head_address"].replace("tcp://", "")
    cluster_record.write(cluster_record.record_for(head, info["session_dir"], info["pid"]), roots)
    print(f"Started zray node {info['node_id'][:12]} (pid {info['pid']}) in {info['session_dir']}")
    print(f"Head address: {head}")
    if info.get("metrics_export_port", -1) >= 0:
        print(f"Prometheus metrics: http://{info['node_ip']}:{info['metrics_export_port']}/metrics")
    print(
        f"Connect with zray.init(address='{head}') or zray.init(address='auto'); on this "
        f"machine plain zray.init() connects too"
    )
    if head_node:
        token = security.read_token(info["session_dir"])
        encrypt = " --encrypt" if security.read_cluster_info(info["session_dir"])["encrypt"] else ""
        print(f"Cluster token: {token}")
        print(
            f"  (also in {os.path.join(info['session_dir'], security.TOKEN_FILE)}, mode 0600, "
            f"where nodes and drivers of this machine find it; remote drivers need "
            f"ZRAY_TOKEN={token})"
        )
        if info.get("dashboard_address"):
            print(f"View the dashboard at {dashboard_url(info['dashboard_address'], token)}")
        print(f"add nodes on this machine with: zray start --address={head}")
        print(f"add nodes with: zray start --address={head} --token={token}{encrypt}")
    else:
        print(f"add nodes with: zray start --address={head} --token=<cluster token>")


def dashboard_url(address: str, token: str) -> str:
    """The URL that opens the dashboard: it carries the token once (see zray.dashboard.auth)."""
    from urllib.parse import quote

    return f"http://{address}/?token={quote(token, safe='')}"


def session_roots() -> list:
    """The session root and every --temp-dir a `zray start` used instead."""
    from zray._config import config
    from zray._private.common import cluster_record

    root = config.session_dir_root
    return [root] + cluster_record.temp_dirs(root)


def local_node_pids(roots: list, mark_stopping: bool = False) -> list:
    from zray._private.common import session

    pids = []
    for root in roots:
        for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            nodes = os.path.join(root, entry, "nodes")
            if not entry.startswith("session_") or not os.path.isdir(nodes):
                continue
            for name in os.listdir(nodes):
                try:
                    pid, kind = session.read_node_pid(os.path.join(nodes, name))
                except (OSError, ValueError, IndexError):
                    continue
                if kind == "daemon" and session._pid_alive(pid):
                    pids.append(pid)
                    if mark_stopping:
                        session.mark_cluster_stopping(os.path.join(root, entry))
    return pids


def client_server_pids(roots: list) -> list:
    """The ray:// client servers of this machine's sessions (they end with their head node,
    but `zray stop` need not wait for them to notice)."""
    from zray._private.common import session
    from zray.util.client.server.proxier import CLIENT_SERVER_PID_FILE

    pids = []
    for root in roots:
        for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            try:
                with open(os.path.join(root, entry, CLIENT_SERVER_PID_FILE)) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if session._pid_alive(pid):
                pids.append(pid)
    return pids


def cmd_stop(args) -> int:
    from zray._config import config
    from zray._private.common import cluster_record, session

    roots = session_roots()
    nodes = local_node_pids(roots, mark_stopping=True)
    pids = nodes + client_server_pids(roots)
    sig = signal.SIGKILL if args.force else signal.SIGTERM
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + args.grace_period
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [p for p in remaining if _alive(p)]
        time.sleep(0.05)
    for pid in remaining:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for root in roots:
        session.clean_stale_sessions(root)
        cluster_record.clear(root)
    cluster_record.forget_temp_dirs(config.session_dir_root)
    if nodes:
        print(f"Stopped {len(nodes)} zray node(s).")
    else:
        print("Did not find any active zray processes.")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cmd_status(args) -> int:
    from zray._private.common.cluster_info import credentials_for, fetch_nodes, resolve_address

    address = resolve_address(args.address or "auto")
    nodes = fetch_nodes(address, credentials_for(address))
    alive = [n for n in nodes if n["alive"]]
    print(f"======== zray cluster status ({address}) ========")
    print(f"Nodes: {len(alive)} alive, {len(nodes) - len(alive)} dead")
    for node in nodes:
        state = "ALIVE" if node["alive"] else f"DEAD ({node['death_reason']})"
        print(
            f"  {node['node_id'].hex()[:12]}  {node['ip']:<15} {state}"
            f"{'  head' if node['is_head'] else ''}"
        )
    from zray._private.common.bundles import group_and_index, is_group_resource, original

    totals, used, reserved, reserved_used = {}, {}, {}, {}
    for node in alive:
        for name, amount in node["resources"].items():
            free = node["available"].get(name, 0)
            if is_group_resource(name):
                # As `ray status` shows them: what placement groups reserve, and use of it.
                if group_and_index(name)[1] < 0:
                    for base in original({name: amount}):  # none for the bundle marker
                        reserved[base] = reserved.get(base, 0) + amount
                        reserved_used[base] = reserved_used.get(base, 0) + amount - free
                continue
            totals[name] = totals.get(name, 0) + amount
            used[name] = used.get(name, 0) + amount - free
    print("Resources (used/total):")
    for name in sorted(totals):
        if name.startswith("node:") or name in ("memory", "object_store_memory"):
            continue
        note = (
            (f" ({reserved_used[name]:g} used of {reserved[name]:g} reserved in placement groups)")
            if name in reserved
            else ""
        )
        print(f"  {used[name]:g}/{totals[name]:g} {name}{note}")
    store_used = sum(n["store_used"] for n in alive)
    store_total = sum(n["object_store_memory"] for n in alive)
    print(f"Object store: {store_used / 2**20:.1f} MiB used of {store_total / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
