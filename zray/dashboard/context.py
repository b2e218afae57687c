"""What the dashboard's handlers find on the application (typed aiohttp app keys)."""

from __future__ import annotations

from aiohttp import web

SOURCE = web.AppKey("source", object)  # zray.dashboard.source.ClusterSource
LOGS = web.AppKey("logs", object)  # zray.dashboard.logs.LogFiles
SESSION_NAME = web.AppKey("session_name", str)
HEAD_ADDRESS = web.AppKey("head_address", str)
JOBS = web.AppKey("jobs", object)  # zray.dashboard.job_manager.JobManager
