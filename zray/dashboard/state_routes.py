"""Ray's state endpoints (`/api/v0/<resource>`, `/api/v0/<resource>/summarize`) and
`/api/version`, with Ray's request parameters and reply shape ({"result", "msg", "data"}), so
Ray tooling that probes the dashboard finds what it expects. The rows are the state API's."""

from __future__ import annotations

import asyncio

from aiohttp import web

from zray.dashboard.context import SOURCE, SESSION_NAME
from zray.util.state.common import (
    DEFAULT_LIMIT,
    DEFAULT_RPC_TIMEOUT,
    MAX_LIMIT,
    ListApiOptions,
    StateResource,
    SummaryResource,
)
from zray.util.state.exception import RayStateApiException

# Ray's dashboard API version (ray/dashboard/modules/version.py), and the Ray release whose API
# zray follows.
API_VERSION = "4"
RAY_VERSION = "2.60.0"
LISTED = (
    StateResource.ACTORS,
    StateResource.JOBS,
    StateResource.NODES,
    StateResource.PLACEMENT_GROUPS,
    StateResource.WORKERS,
    StateResource.TASKS,
    StateResource.OBJECTS,
)
SUMMARIZED = (SummaryResource.ACTORS, SummaryResource.TASKS, SummaryResource.OBJECTS)


def rest_response(status: int, message: str, **data) -> web.Response:
    """Ray's reply shape (ray/dashboard/routes.py rest_response)."""
    return web.json_response({"result": status == 200, "msg": message, "data": data}, status=status)


def options_from_request(request: web.Request) -> ListApiOptions:
    """Ray's ListApiOptions from the query string (ray/dashboard/state_api_utils.py)."""
    query = request.query
    limit = int(query.get("limit", DEFAULT_LIMIT))
    if limit > MAX_LIMIT:
        raise ValueError(
            f"Given limit {limit} exceeds the supported limit {MAX_LIMIT}. Use a lower limit, "
            f"or set the `RAY_MAX_LIMIT_FROM_API_SERVER` environment variable to a larger value."
        )
    keys = query.getall("filter_keys", [])
    predicates = query.getall("filter_predicates", [])
    values = query.getall("filter_values", [])
    if not len(keys) == len(predicates) == len(values):
        raise ValueError("filter_keys, filter_predicates and filter_values must pair up")
    return ListApiOptions(
        limit=limit,
        timeout=int(query.get("timeout", DEFAULT_RPC_TIMEOUT)),
        filters=list(zip(keys, predicates, values)),
        detail=query.get("detail", "false").lower() in ("1", "true"),
    )


async def answer(compute) -> web.Response:
    try:
        result = await asyncio.to_thread(compute)
    except ValueError as exc:
        return rest_response(400, str(exc), result=None)
    except NotImplementedError as exc:
        return rest_response(501, str(exc), result=None)
    except (RayStateApiException, ConnectionError) as exc:
        return rest_response(500, str(exc), result=None)
    return rest_response(200, "", result=result)


async def version(request: web.Request) -> web.Response:
    from zray import __version__

    return web.json_response(
        {
            "version": API_VERSION,
            "ray_version": RAY_VERSION,
            "ray_commit": "",
            "session_name": request.app[SESSION_NAME],
            "zray_version": __version__,
        }
    )


def list_handler(resource: StateResource):
    async def handle(request: web.Request) -> web.Response:
        try:
            options = options_from_request(request)
        except ValueError as exc:
            return rest_response(400, str(exc), result=None)
        source = request.app[SOURCE]
        return await answer(lambda: source.list_rows(resource, options))

    return handle


def summary_handler(resource: SummaryResource):
    async def handle(request: web.Request) -> web.Response:
        source = request.app[SOURCE]
        return await answer(lambda: source.summary(resource))

    return handle


def add_routes(app: web.Application):
    app.router.add_get("/api/version", version)
    for resource in LISTED:
        app.router.add_get(f"/api/v0/{resource.value}", list_handler(resource))
    for resource in SUMMARIZED:
        app.router.add_get(f"/api/v0/{resource.value}/summarize", summary_handler(resource))
