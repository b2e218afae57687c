"""The dashboard's web application: the token guard in front of everything, then one module of
routes per area. A new area (Ray's Jobs REST API, `/api/jobs/`) is one more module with an
`add_routes(app)`, listed in ROUTE_MODULES; it is guarded like the rest without doing anything.
"""

from __future__ import annotations

import os

from aiohttp import web

from zray.dashboard import cluster_routes, job_routes, state_routes
from zray.dashboard.auth import Guard
from zray.dashboard.context import HEAD_ADDRESS, JOBS, LOGS, SESSION_NAME, SOURCE

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
ROUTE_MODULES = (state_routes, cluster_routes, job_routes)

# The page's own scripts and styles only: data shown on the page (actor names, tracebacks,
# log lines) is inserted as text by app.js, and this keeps anything else from running.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC_DIR, "index.html"))


def make_app(
    source, logs, guard: Guard, session_name: str, head_address: str, jobs=None
) -> web.Application:
    # Big enough for a working_dir package (PUT /api/packages/...), Ray's 512 MiB bound.
    app = web.Application(
        middlewares=[security_headers, guard.middleware],
        client_max_size=job_routes.MAX_REQUEST_BYTES,
    )
    app[SOURCE] = source
    app[LOGS] = logs
    app[SESSION_NAME] = session_name
    app[HEAD_ADDRESS] = head_address
    app[JOBS] = jobs  # zray.dashboard.job_manager.JobManager
    for module in ROUTE_MODULES:
        module.add_routes(app)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR)
    return app
