"""`python -m zray.dashboard`: the dashboard process, started by the head node's daemon
(zray/_private/node/dashboard_process.py) with the listening socket already bound."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time

PARENT_CHECK_S = 1.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="zray-dashboard")
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--head-address", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--log-file", help="its stdout and stderr, to rotate")
    args = parser.parse_args(argv)
    rotation = None
    if args.log_file:  # rotated with Ray's variables (common/log_rotation.py)
        from zray._private.common import log_rotation

        rotation = log_rotation.RotatingStderr(args.log_file, *log_rotation.settings(), fds=(2, 1))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from aiohttp import web

    from zray._config import config
    from zray._private.common import session
    from zray._private.wire.security import Credentials
    from zray.dashboard.app import make_app
    from zray.dashboard.auth import Guard
    from zray.dashboard.job_manager import JobManager
    from zray.dashboard.logs import LogFiles
    from zray.dashboard.source import ClusterSource

    sock = socket.socket(fileno=args.listen_fd)
    creds = Credentials(config.token, config.encrypt)
    source = ClusterSource(args.head_address, creds)
    logs = LogFiles(source)
    guard = Guard(config.token, sock.getsockname()[1])
    jobs = JobManager(source.connection, args.head_address, args.session_dir)
    app = make_app(
        source, logs, guard, session.session_name(args.session_dir), args.head_address, jobs
    )

    try:
        failed = jobs.recover()
        if failed:
            logging.warning("%d submitted job(s) lost their supervisor: marked FAILED", failed)
    except Exception:  # the dashboard serves on; the jobs stay as recorded
        logging.exception("recovering submitted jobs failed")

    async def serve():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set():
                if rotation is not None:
                    rotation.tick(time.monotonic())
                if args.parent_pid and os.getppid() != args.parent_pid:
                    logging.warning("the node daemon that started the dashboard is gone")
                    break
                try:
                    await asyncio.wait_for(stop.wait(), PARENT_CHECK_S)
                except asyncio.TimeoutError:
                    pass
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    finally:
        jobs.close()
        source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
