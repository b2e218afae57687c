"""The dashboard's own JSON, for its pages: the cluster overview (nodes and their use), a page of
the tasks table, objects and memory (what `zray memory` shows), and log files with a live
tail."""

from __future__ import annotations

import asyncio

from aiohttp import web

from zray.dashboard.context import HEAD_ADDRESS, LOGS, SESSION_NAME, SOURCE
from zray.dashboard.state_routes import answer


async def cluster(request: web.Request) -> web.Response:
    source = request.app[SOURCE]

    def compute():
        return {
            "session_name": request.app[SESSION_NAME],
            "head_address": request.app[HEAD_ADDRESS],
            "nodes": source.nodes(),
        }

    return await answer(compute)


TASKS_PER_PAGE_MAX = 1000


async def tasks(request: web.Request) -> web.Response:
    """One page of the tasks table (`offset`, `limit`, optional `state`): the head filters and
    limits, so a page of 100 out of 10,000 tasks ships 100 rows."""
    from zray.util.state.common import MAX_LIMIT

    query = request.query
    try:
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
    except ValueError:
        return web.json_response(
            {"result": False, "msg": "offset and limit must be integers"}, status=400
        )
    if offset < 0 or not 0 < limit <= TASKS_PER_PAGE_MAX or offset + limit > MAX_LIMIT:
        return web.json_response(
            {
                "result": False,
                "msg": f"need 0 <= offset, 0 < limit <= {TASKS_PER_PAGE_MAX} and "
                f"offset + limit <= {MAX_LIMIT}",
            },
            status=400,
        )
    source = request.app[SOURCE]
    return await answer(lambda: source.task_page(offset, limit, query.get("state", "")))


async def memory(request: web.Request) -> web.Response:
    return await answer(request.app[SOURCE].memory)


async def log_files(request: web.Request) -> web.Response:
    return await answer(request.app[LOGS].listing)


async def log_read(request: web.Request) -> web.Response:
    file_id = request.query.get("file", "")
    raw = request.query.get("offset")
    try:
        offset = int(raw) if raw not in (None, "") else None
    except ValueError:
        return web.json_response({"result": False, "msg": "offset must be an integer"}, status=400)
    found = await asyncio.to_thread(request.app[LOGS].read, file_id, offset)
    if found is None:
        return web.json_response(
            {"result": False, "msg": f"no log file {file_id!r}", "data": {}}, status=404
        )
    return web.json_response({"result": True, "msg": "", "data": {"result": found}})


def add_routes(app: web.Application):
    app.router.add_get("/api/cluster", cluster)
    app.router.add_get("/api/memory", memory)
    app.router.add_get("/api/tasks", tasks)
    app.router.add_get("/api/logs", log_files)
    app.router.add_get("/api/logs/read", log_read)
