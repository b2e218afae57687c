"""Ray's Jobs REST API (ray/dashboard/modules/job/job_head.py), which Ray's JobSubmissionClient
and `ray job` speak: submit, list, info, logs (whole and followed over a websocket), stop,
delete, and the package upload a working_dir travels by. Replies, status codes and error texts
are Ray's. Behind the dashboard's token guard like every route."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import traceback

from aiohttp import web

from zray.dashboard.context import JOBS, LOGS, SOURCE
from zray.job_submission.common import (
    JOB_LOGS_PATH_TEMPLATE,
    JobLogsResponse,
    JobStatus,
    JobStopResponse,
    JobSubmitRequest,
    JobSubmitResponse,
    JobDeleteResponse,
)

logger = logging.getLogger(__name__)

TAIL_POLL_S = 0.5
MAX_REQUEST_BYTES = 512 * 2**20 + 2**20  # a package up to Ray's 512 MiB bound, and headers
QUERY_TIMEOUT_S = 10


def _json(payload, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(payload), content_type="application/json", status=status)


def _text(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status)


def _all_jobs(request) -> list:
    """Every job row (submissions first), fresh: a status read just after a change must see it."""
    from zray.util.state.common import ListApiOptions, StateResource

    source = request.app[SOURCE]
    rows = source.state.list(
        StateResource.JOBS,
        ListApiOptions(limit=10_000, detail=True, timeout=QUERY_TIMEOUT_S),
        raise_on_missing_output=False,
    )
    rows = [row.asdict() if hasattr(row, "asdict") else dict(row) for row in rows]
    return sorted(rows, key=lambda row: row["type"] != "SUBMISSION")  # Ray's order


def _find(request, job_or_submission_id: str):
    """Ray's find_job_by_ids: a submission id first, then a driver's job id."""
    rows = _all_jobs(request)
    for key in ("submission_id", "job_id"):
        for row in rows:
            if row.get(key) == job_or_submission_id:
                return row
    return None


def _details(row: dict) -> dict:
    from zray.job_submission.models import JobDetails

    return JobDetails(**row).dict()


async def _found(request):
    """(row, None), or (None, the 404 / 400 answer) as Ray's routes give them."""
    job_id = request.match_info["job_or_submission_id"]
    row = await asyncio.to_thread(_find, request, job_id)
    if row is None:
        return None, _text(f"Job {job_id} does not exist", 404)
    return row, None


def _submission_only(row: dict, what: str):
    if row["type"] != "SUBMISSION":
        return _text(f"Can only {what} submission type jobs", 400)
    return None


async def get_package(request: web.Request) -> web.Response:
    from zray._private.common import packaging
    from zray._private.wire import protocol as P

    uri = f"{request.match_info['protocol']}://{request.match_info['package_name']}"
    connection = request.app[SOURCE].connection
    try:
        reply = await asyncio.to_thread(
            connection.ask_head, P.KvGet(packaging.KV_NAMESPACE, uri.encode(), 0.0), QUERY_TIMEOUT_S
        )
    except Exception:
        return _text(traceback.format_exc(), 500)
    if not reply.found:
        return _text(f"Package {uri} does not exist", 404)
    return web.Response()


async def upload_package(request: web.Request) -> web.Response:
    from zray._private.common import packaging
    from zray._private.wire import protocol as P

    protocol = request.match_info["protocol"]
    uri = f"{protocol}://{request.match_info['package_name']}"
    if protocol != "gcs" or not uri.endswith((".zip", ".whl")):
        return _text(f"package_uri ({uri}) must be gcs://<name>.zip or .whl", 400)
    data = await request.read()
    if not uri.startswith(packaging.PACKAGE_SCHEME) or len(data) >= packaging.MAX_PACKAGE_BYTES:
        return _text(f"package {uri} is too large or malformed", 400)
    try:
        await asyncio.to_thread(
            request.app[SOURCE].connection.ask_head,
            P.KvPut(packaging.KV_NAMESPACE, uri.encode(), data, False),
            QUERY_TIMEOUT_S,
        )
    except Exception:
        return _text(traceback.format_exc(), 500)
    return web.Response(status=200)


async def submit_job(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise TypeError("the request body must be a JSON object")
        submit = JobSubmitRequest(**body)
    except Exception as exc:
        return _text(f"Bad Request: {type(exc).__name__}: {exc}", 400)
    manager = request.app[JOBS]
    try:
        submission_id = await asyncio.to_thread(manager.submit, submit)
    except (TypeError, ValueError, NotImplementedError):
        return _text(traceback.format_exc(), 400)
    except Exception:
        logger.exception("Failed to submit job due to unexpected exception.")
        return _text(traceback.format_exc(), 500)
    return _json(dataclasses.asdict(JobSubmitResponse(submission_id, submission_id)))


async def _on_submission(request: web.Request, verb: str, response) -> web.Response:
    """`stop` or `delete` (the JobManager method of that name) of a submitted job: Ray refuses
    both for a driver started by hand."""
    row, answer = await _found(request)
    if answer is None:
        answer = _submission_only(row, verb)
    if answer is not None:
        return answer
    try:
        done = await asyncio.to_thread(getattr(request.app[JOBS], verb), row["submission_id"])
    except Exception:
        return _text(traceback.format_exc(), 500)
    return _json(dataclasses.asdict(response(done)))


async def stop_job(request: web.Request) -> web.Response:
    return await _on_submission(request, "stop", JobStopResponse)


async def delete_job(request: web.Request) -> web.Response:
    return await _on_submission(request, "delete", JobDeleteResponse)


async def get_job_info(request: web.Request) -> web.Response:
    row, answer = await _found(request)
    if answer is not None:
        return answer
    return _json(_details(row))


async def list_jobs(request: web.Request) -> web.Response:
    try:
        rows = await asyncio.to_thread(_all_jobs, request)
    except Exception:
        return _text(traceback.format_exc(), 500)
    return _json([_details(row) for row in rows])


def _log_node(request, row: dict) -> str | None:
    """The id of the node to read the job's log from: its driver's node while that lives;
    else a live node of the same machine, the head's first, which finds the log kept from
    the session that wrote it (common/kept_job_logs.py: a head restart ends the head node's
    session). A job that ended without a driver (its supervisor never started) has the
    dashboard's note of why in the head node's logs. None before the job has a log."""
    node_id = row.get("driver_node_id")
    if not node_id and not JobStatus(row["status"]).is_terminal():
        return None
    nodes = request.app[SOURCE].node_table()
    driver = next((n for n in nodes if n["node_id"].hex() == node_id), None)
    if driver is not None and driver["alive"]:
        return node_id
    alive = sorted((n for n in nodes if n["alive"]), key=lambda n: not n["is_head"])
    same_machine = [n for n in alive if driver is None or n["ip"] == driver["ip"]]
    return same_machine[0]["node_id"].hex() if same_machine else None


def _read(request, row: dict, offset: int):
    """(text, next offset) of the job's log from `offset`; ("", offset) before it exists."""
    node_id = _log_node(request, row)
    if not node_id:
        return "", offset
    name = JOB_LOGS_PATH_TEMPLATE.format(submission_id=row["submission_id"])
    chunks = []
    while True:
        found = request.app[LOGS].read(f"{node_id}/{name}", offset)
        if found is None:
            break
        chunks.append(found["text"])
        offset = found["offset"]
        if not found["text"] or offset >= found["size"]:
            break
    return "".join(chunks), offset


async def get_job_logs(request: web.Request) -> web.Response:
    row, answer = await _found(request)
    if answer is None:
        answer = _submission_only(row, "get logs of")
    if answer is not None:
        return answer
    try:
        text, _ = await asyncio.to_thread(_read, request, row, 0)
    except Exception:
        return _text(traceback.format_exc(), 500)
    return _json(dataclasses.asdict(JobLogsResponse(text)))


async def tail_job_logs(request: web.Request) -> web.StreamResponse:
    row, answer = await _found(request)
    if answer is None:
        answer = _submission_only(row, "get logs of")
    if answer is not None:
        return answer
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    offset, finished = 0, False
    submission_id = row["submission_id"]
    while not ws.closed:
        text, offset = await asyncio.to_thread(_read, request, row, offset)
        if text:
            await ws.send_str(text)
            continue
        if finished:  # one last read after the job ended: nothing more will come
            break
        row = await asyncio.to_thread(_find, request, submission_id)
        if row is None:
            break
        finished = JobStatus(row["status"]).is_terminal()
        if not finished:
            await asyncio.sleep(TAIL_POLL_S)
    await ws.close()
    return ws


def add_routes(app: web.Application):
    app.router.add_get("/api/packages/{protocol}/{package_name}", get_package)
    app.router.add_put("/api/packages/{protocol}/{package_name}", upload_package)
    app.router.add_post("/api/jobs/", submit_job)
    app.router.add_get("/api/jobs/", list_jobs)
    app.router.add_get("/api/jobs/{job_or_submission_id}", get_job_info)
    app.router.add_delete("/api/jobs/{job_or_submission_id}", delete_job)
    app.router.add_post("/api/jobs/{job_or_submission_id}/stop", stop_job)
    app.router.add_get("/api/jobs/{job_or_submission_id}/logs", get_job_logs)
    app.router.add_get("/api/jobs/{job_or_submission_id}/logs/tail", tail_job_logs)
