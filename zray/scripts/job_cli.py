"""`zray job`: Ray's `ray job submit|status|logs|stop|list|delete`, with its flags and output
(record style), over the Jobs SDK (zray.job_submission). `--address` or RAY_API_SERVER_ADDRESS
/ RAY_ADDRESS name the dashboard (http://host:8265) or the cluster; RAY_JOB_HEADERS gives
headers as JSON, as in Ray. The cluster token is sent as Ray's token authentication sends it
(see zray/job_submission/sdk.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pprint
import shlex
import sys
import time

from zray._config import config

VERBS = ("submit", "status", "logs", "stop", "list", "delete")


def _common(parser, job_id: bool = True):
    parser.add_argument(
        "--address",
        default=None,
        help="Address of the Ray cluster to connect to. Can also be specified using the "
        "RAY_API_SERVER_ADDRESS environment variable (falls back to RAY_ADDRESS).",
    )
    if job_id:
        parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument(
        "--verify",
        default="True",
        help="Boolean indication to verify the server's TLS certificate or a path to a file "
        "or directory of trusted certificates. [default: True]",
    )
    parser.add_argument(
        "--headers",
        default=None,
        help='Headers to send to the cluster, as JSON: {"key": "value"}',
    )
    parser.add_argument(
        "--log-style",
        choices=("auto", "record", "pretty"),
        default="auto",
        help="zray prints record style (no formatting): auto and record",
    )
    parser.add_argument(
        "--log-color",
        choices=("auto", "false", "true"),
        default="auto",
        help="zray prints without color: auto and false",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def add_parser(commands):
    job = commands.add_parser("job", help="Submit, stop, delete, or list Ray jobs.")
    verbs = job.add_subparsers(dest="job_command", required=True)
    submit = verbs.add_parser("submit", help="Submits a job to be run on the cluster.")
    _common(submit, job_id=False)
    submit.add_argument("--job-id", default=None, help="DEPRECATED: Use `--submission-id`.")
    submit.add_argument("--submission-id", default=None, help="Submission ID for the job.")
    submit.add_argument("--runtime-env", default=None, help="Path to a runtime_env YAML file.")
    submit.add_argument("--runtime-env-json", default=None, help="JSON runtime_env dictionary.")
    submit.add_argument("--working-dir", default=None, help="Directory the job runs in.")
    submit.add_argument("--metadata-json", default=None, help="JSON metadata dictionary.")
    submit.add_argument("--entrypoint-num-cpus", type=float, default=None)
    submit.add_argument("--entrypoint-num-gpus", type=float, default=None)
    submit.add_argument("--entrypoint-memory", type=int, default=None)
    submit.add_argument("--entrypoint-resources", default=None, help="JSON resources dict.")
    submit.add_argument("--entrypoint-label-selector", default=None, help="JSON label dict.")
    submit.add_argument(
        "--no-wait", action="store_true", help="Do not stream logs and wait for the job to exit."
    )
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- the command to run")
    status = verbs.add_parser("status", help="Queries for the current status of a job.")
    _common(status)
    logs = verbs.add_parser("logs", help="Gets the logs of a job.")
    _common(logs)
    logs.add_argument("-f", "--follow", action="store_true", help="Follow the logs.")
    stop = verbs.add_parser("stop", help="Attempts to stop a job.")
    _common(stop)
    stop.add_argument("--no-wait", action="store_true", help="Do not wait for the job to exit.")
    listing = verbs.add_parser("list", help="Lists all running jobs and their information.")
    _common(listing, job_id=False)
    delete = verbs.add_parser("delete", help="Deletes a stopped job and its data.")
    _common(delete)


def main(args) -> int:
    from zray.exceptions import AuthenticationError

    try:
        _check_output_flags(args)
        return {
            "submit": _submit,
            "status": _status,
            "logs": _logs,
            "stop": _stop,
            "list": _list,
            "delete": _delete,
        }[args.job_command](args)
    except (RuntimeError, ValueError, TypeError, AuthenticationError, FileNotFoundError) as exc:
        print(f"zray job {args.job_command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zray job list | head`: the reader has what it wanted
        # The exit's flush of stdout would fail again: let it write to nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _check_output_flags(args):
    if args.log_style == "pretty" or args.log_color == "true":
        flag = "--log-style=pretty" if args.log_style == "pretty" else "--log-color=true"
        raise ValueError(f"{flag} is not supported by zray: it prints record style, uncolored")
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG)


def _client(args):
    from zray.job_submission import JobSubmissionClient

    headers = args.headers
    if headers is None and config.job_headers:
        headers = config.job_headers
    if headers is not None:
        try:
            headers = json.loads(headers)
        except ValueError as exc:
            raise ValueError(
                f'Failed to parse headers into JSON. Expected format: {{"KEY": "VALUE"}}, '
                f"got {headers}, {exc}"
            ) from None
    verify = args.verify
    if verify.lower() in ("true", "false", "1", "0"):
        verify = verify.lower() in ("true", "1")
    client = JobSubmissionClient(args.address, headers=headers, verify=verify)
    print(f"Job submission server address: {client.get_address()}")
    return client


def _big(message: str):
    print()
    print("-" * len(message))
    print(message)
    print("-" * len(message))
    print()


def _log_job_status(client, job_id: str):
    from zray.job_submission import JobStatus

    info = client.get_job_info(job_id)
    if info.status == JobStatus.SUCCEEDED:
        _big(f"Job '{job_id}' succeeded")
    elif info.status == JobStatus.STOPPED:
        print(f"Job '{job_id}' was stopped")
    elif info.status == JobStatus.FAILED:
        _big(f"Job '{job_id}' failed")
        if info.message is not None:
            print(f"Status message: {info.message}")
    else:
        print(f"Status for job '{job_id}': {info.status}")
        if info.message is not None:
            print(f"Status message: {info.message}")
    return info.status


def _tail(client, job_id: str):
    async def tail():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    return _log_job_status(client, job_id)


def _json_dict(raw: str, flag: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"--{flag} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--{flag} must be a JSON object, got {raw!r}")
    return value


def parse_runtime_env_args(runtime_env=None, runtime_env_json=None, working_dir=None) -> dict:
    """Ray's: --runtime-env (YAML file) or --runtime-env-json, --working-dir over either."""
    final: dict = {}
    if runtime_env is not None:
        if runtime_env_json is not None:
            raise ValueError("Only one of --runtime_env and --runtime-env-json can be provided.")
        try:
            import yaml
        except ImportError:
            raise ValueError("--runtime-env needs PyYAML (pip install pyyaml)") from None
        with open(runtime_env) as f:
            final = yaml.safe_load(f) or {}
    elif runtime_env_json is not None:
        final = _json_dict(runtime_env_json, "runtime-env-json")
    if working_dir is not None:
        if "working_dir" in final:
            print("Overriding runtime_env working_dir with --working-dir option", file=sys.stderr)
        final["working_dir"] = working_dir
    return final


def _submit(args) -> int:
    from zray.job_submission import JobStatus

    entrypoint = list(args.entrypoint)
    if entrypoint and entrypoint[0] == "--":
        entrypoint = entrypoint[1:]
    if not entrypoint:
        raise ValueError("give the entrypoint after the options: zray job submit -- python x.py")
    if args.job_id:
        print("--job-id option is deprecated. Please use --submission-id instead.")
    if config.job_submit_hook:
        raise ValueError("RAY_JOB_SUBMIT_HOOK is set, but zray does not run submit hooks: unset it")
    resources = (
        _json_dict(args.entrypoint_resources, "entrypoint-resources")
        if args.entrypoint_resources is not None
        else None
    )
    selector = (
        _json_dict(args.entrypoint_label_selector, "entrypoint-label-selector")
        if args.entrypoint_label_selector is not None
        else None
    )
    metadata = (
        _json_dict(args.metadata_json, "metadata-json") if args.metadata_json is not None else None
    )
    runtime_env = parse_runtime_env_args(args.runtime_env, args.runtime_env_json, args.working_dir)
    client = _client(args)
    job_id = client.submit_job(
        entrypoint=shlex.join(entrypoint),
        submission_id=args.submission_id or args.job_id,
        runtime_env=runtime_env,
        metadata=metadata,
        entrypoint_num_cpus=args.entrypoint_num_cpus,
        entrypoint_num_gpus=args.entrypoint_num_gpus,
        entrypoint_memory=args.entrypoint_memory,
        entrypoint_resources=resources,
        entrypoint_label_selector=selector,
    )
    _big(f"Job '{job_id}' submitted successfully")
    print("Next steps")
    print("  Query the logs of the job:")
    print(f"    zray job logs {job_id}")
    print("  Query the status of the job:")
    print(f"    zray job status {job_id}")
    print("  Request the job to be stopped:")
    print(f"    zray job stop {job_id}")
    print(flush=True)
    if not args.no_wait:
        print("Tailing logs until the job exits (disable with --no-wait):", flush=True)
        if _tail(client, job_id) == JobStatus.FAILED:
            return 1
    return 0


def _status(args) -> int:
    _log_job_status(_client(args), args.job_id)
    return 0


def _logs(args) -> int:
    client = _client(args)
    if args.follow:
        _tail(client, args.job_id)
    else:
        print(client.get_job_logs(args.job_id), end="")
    return 0


def _stop(args) -> int:
    from zray.job_submission import JobStatus

    client = _client(args)
    print(f"Attempting to stop job '{args.job_id}'")
    client.stop_job(args.job_id)
    if args.no_wait:
        return 0
    print(f"Waiting for job '{args.job_id}' to exit (disable with --no-wait):")
    while True:
        status = client.get_job_status(args.job_id)
        if status in {JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED}:
            _log_job_status(client, args.job_id)
            return 0
        print(f"Job has not exited yet. Status: {status}", flush=True)
        time.sleep(1)


def _list(args) -> int:
    print(pprint.pformat(_client(args).list_jobs()))
    return 0


def _delete(args) -> int:
    _client(args).delete_job(args.job_id)
    print(f"Job '{args.job_id}' deleted successfully")
    return 0
