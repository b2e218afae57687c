"""JobSubmissionClient: Ray's Jobs SDK (ray/dashboard/modules/job/sdk.py), over HTTP to the
dashboard of the cluster's head, with Ray's methods, arguments and errors.

The cluster's token goes in `Authorization: Bearer <token>`, as Ray's token authentication
sends it: from `headers` when the caller gives one, else ZRAY_TOKEN (RAY_AUTH_TOKEN), else the
token of the one cluster that has a node on this machine. A working_dir or py_modules given as
a local path is zipped and uploaded first (PUT /api/packages/gcs/<name>), once per content.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import ssl
from typing import Any, AsyncIterator, Dict, List, Optional, Union

from zray.job_submission.common import (
    JobDeleteResponse,
    JobLogsResponse,
    JobStatus,
    JobStopResponse,
    JobSubmitRequest,
    JobSubmitResponse,
)
from zray.job_submission.models import JobDetails

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_ADDRESS = "http://localhost:8265"
# The dashboard writes its host:port here in the head's KV (Ray's KV_NAMESPACE_DASHBOARD and
# DASHBOARD_ADDRESS), so a cluster address ("auto", host:port) finds its Jobs API.
KV_NAMESPACE_DASHBOARD = "dashboard"
DASHBOARD_ADDRESS_KEY = b"dashboard"


class JobSubmissionClient:
    """A local client for submitting and interacting with jobs on a remote cluster.

    Args:
        address: Either the HTTP address of the dashboard on the head node, e.g.
            ``"http://<head-node-ip>:8265"``, or the address of the cluster (``"auto"``,
            ``"host:port"`` of its head) whose dashboard to find. Always overridden by the
            RAY_API_SERVER_ADDRESS or RAY_ADDRESS environment variable.
        create_cluster_if_needed: Ray's; a cluster is never started here.
        cookies: Cookies to send with each request.
        metadata: Metadata stored with every job, merged under each job's own.
        headers: Headers to send with each request (e.g. ``Authorization``).
        verify: Verify the server's TLS certificate (or a CA bundle path).
    """

    def __init__(
        self,
        address: Optional[str] = None,
        create_cluster_if_needed: bool = False,
        cookies: Optional[Dict[str, Any]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, Any]] = None,
        verify: Optional[Union[str, bool]] = True,
        **kwargs,
    ):
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a string, got {type(address)}")
        if not isinstance(create_cluster_if_needed, bool):
            raise TypeError(
                f"create_cluster_if_needed must be a bool, got {type(create_cluster_if_needed)}"
            )
        if cookies is not None and not isinstance(cookies, dict):
            raise TypeError(f"cookies must be a dict, got {type(cookies)}")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata)}")
        if headers is not None and not isinstance(headers, dict):
            raise TypeError(f"headers must be a dict, got {type(headers)}")
        if not isinstance(verify, (str, bool)):
            raise TypeError(f"verify must be a str or bool, got {type(verify)}")
        if kwargs:
            raise ValueError(
                f"JobSubmissionClient({next(iter(kwargs))}=...) is not supported by zray: "
                "it speaks only to http(s):// addresses"
            )
        if create_cluster_if_needed:
            raise ValueError(
                "JobSubmissionClient(create_cluster_if_needed=True) is not supported by zray: "
                "start the cluster with `zray start --head` first"
            )
        self._address = api_server_url(address).rstrip("/")
        self._cookies = cookies
        self._default_metadata = dict(metadata or {})
        self._headers = dict(headers or {})
        if not any(k.lower() == "authorization" for k in self._headers):
            token = _local_token()
            if token:
                self._headers["Authorization"] = f"Bearer {token}"
        self._verify = verify
        if isinstance(verify, str):
            if os.path.isdir(verify):
                self._ssl_context = ssl.create_default_context(capath=verify)
            elif os.path.isfile(verify):
                self._ssl_context = ssl.create_default_context(cafile=verify)
            else:
                raise FileNotFoundError(f"Path to CA certificates: '{verify}', does not exist.")
        else:
            self._ssl_context = verify  # True: verify with the system CAs; False: do not
        self._server_ray_version: Optional[str] = None
        self._check_connection_and_version()

    # ------------------------------------------------------------------ plumbing

    def _do_request(self, method: str, endpoint: str, *, data=None, json_data=None, **kwargs):
        import requests

        from zray.exceptions import AuthenticationError

        response = requests.request(
            method,
            self._address + endpoint,
            cookies=self._cookies,
            data=data,
            json=json_data,
            headers=self._headers,
            verify=self._verify,
            **kwargs,
        )
        if response.status_code in (401, 403):
            raise AuthenticationError(
                f"Authentication required: {response.text}\n\nThe cluster needs its token: "
                "set ZRAY_TOKEN (or pass headers={'Authorization': 'Bearer <token>'})"
            )
        return response

    def _check_connection_and_version(self):
        import requests

        try:
            r = self._do_request("GET", "/api/version")
            if r.status_code == 404:
                raise RuntimeError(
                    "Version check returned 404. Jobs API is not supported on the Ray "
                    "cluster. Please ensure the cluster is running Ray 1.9 or higher."
                )
            r.raise_for_status()
            self._server_ray_version = r.json()["ray_version"]
        except requests.exceptions.ConnectionError:
            raise ConnectionError(f"Failed to connect to Ray at address: {self._address}.")

    def _raise_error(self, r):
        raise RuntimeError(f"Request failed with status code {r.status_code}: {r.text}.")

    def _upload_packages(self, runtime_env: Dict[str, Any]) -> Dict[str, Any]:
        from zray._private.common import packaging

        excludes = runtime_env.get("excludes") or []

        def upload(path: str, include_parent: bool) -> str:
            if "://" in path:
                return path
            if not os.path.exists(path):
                raise ValueError(f"local path {path!r} in the runtime_env does not exist")
            uri, data = packaging.package_of(path, excludes, include_parent)
            name = uri.split("://", 1)[1]
            r = self._do_request("GET", f"/api/packages/gcs/{name}")
            if r.status_code == 404:
                logger.info("Uploading package %s.", uri)
                r = self._do_request("PUT", f"/api/packages/gcs/{name}", data=data)
            if r.status_code != 200:
                self._raise_error(r)
            return uri

        out = dict(runtime_env)
        if isinstance(out.get("working_dir"), str):
            out["working_dir"] = upload(out["working_dir"], include_parent=False)
        if isinstance(out.get("py_modules"), list):
            out["py_modules"] = [
                upload(m, include_parent=os.path.isdir(m)) if isinstance(m, str) else m
                for m in out["py_modules"]
            ]
        return out

    # ------------------------------------------------------------------ Ray's methods

    def submit_job(
        self,
        *,
        entrypoint: str,
        job_id: Optional[str] = None,
        runtime_env: Optional[Dict[str, Any]] = None,
        metadata: Optional[Dict[str, str]] = None,
        submission_id: Optional[str] = None,
        entrypoint_num_cpus: Optional[Union[int, float]] = None,
        entrypoint_num_gpus: Optional[Union[int, float]] = None,
        entrypoint_memory: Optional[int] = None,
        entrypoint_resources: Optional[Dict[str, float]] = None,
        entrypoint_label_selector: Optional[Dict[str, str]] = None,
    ) -> str:
        """Submit and execute a job asynchronously; returns its submission id.

        Raises:
            RuntimeError: If the request to the job server fails, or if the specified
                submission_id has already been used by a job on this cluster.
        """
        from zray._private.common import runtime_env as RE

        if job_id:
            logger.warning("job_id kwarg is deprecated. Please use submission_id instead.")
        if entrypoint_label_selector:
            raise ValueError(
                "submit_job(entrypoint_label_selector=...) is not supported by zray: its nodes "
                "have no labels to select by"
            )
        runtime_env = copy.deepcopy(runtime_env or {})
        metadata = dict(metadata or {})
        metadata.update(self._default_metadata)
        runtime_env = self._upload_packages(runtime_env)
        RE.parse(runtime_env)  # a bad runtime_env fails here, typed, before any request
        req = JobSubmitRequest(
            entrypoint=entrypoint,
            submission_id=submission_id or job_id,
            runtime_env=runtime_env,
            metadata=metadata,
            entrypoint_num_cpus=entrypoint_num_cpus,
            entrypoint_num_gpus=entrypoint_num_gpus,
            entrypoint_memory=entrypoint_memory,
            entrypoint_resources=entrypoint_resources,
            entrypoint_label_selector=entrypoint_label_selector,
        )
        body = {k: v for k, v in dataclasses.asdict(req).items() if v is not None}
        r = self._do_request("POST", "/api/jobs/", json_data=body)
        if r.status_code == 200:
            return JobSubmitResponse(**r.json()).submission_id
        self._raise_error(r)

    def stop_job(self, job_id: str) -> bool:
        """Request a job to exit asynchronously (SIGTERM, then SIGKILL after a bound).
        True if the job was running."""
        r = self._do_request("POST", f"/api/jobs/{job_id}/stop")
        if r.status_code == 200:
            return JobStopResponse(**r.json()).stopped
        self._raise_error(r)

    def delete_job(self, job_id: str) -> bool:
        """Delete a job in a terminal state and its record (not its log file)."""
        r = self._do_request("DELETE", f"/api/jobs/{job_id}")
        if r.status_code == 200:
            return JobDeleteResponse(**r.json()).deleted
        self._raise_error(r)

    def get_job_info(self, job_id: str) -> JobDetails:
        """The latest status and other information of a job (by job or submission id)."""
        r = self._do_request("GET", f"/api/jobs/{job_id}")
        if r.status_code == 200:
            return JobDetails(**r.json())
        self._raise_error(r)

    def list_jobs(self) -> List[JobDetails]:
        """Every job that ever ran on the cluster, submitted ones and drivers alike."""
        r = self._do_request("GET", "/api/jobs/")
        if r.status_code == 200:
            return [JobDetails(**info) for info in r.json()]
        self._raise_error(r)

    def get_job_status(self, job_id: str) -> JobStatus:
        """The most recent status of a job."""
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        """Everything the job's entrypoint printed so far."""
        r = self._do_request("GET", f"/api/jobs/{job_id}/logs")
        if r.status_code == 200:
            return JobLogsResponse(**r.json()).logs
        self._raise_error(r)

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """Successive chunks of the job's output as it is written, until the job ends."""
        import aiohttp

        async with aiohttp.ClientSession(cookies=self._cookies, headers=self._headers) as session:
            ws = await session.ws_connect(
                f"{self._address}/api/jobs/{job_id}/logs/tail",
                headers=self._headers,
                ssl=self._ssl_context,
            )
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    yield msg.data
                elif msg.type == aiohttp.WSMsgType.CLOSED:
                    if ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
                        raise RuntimeError(
                            "WebSocket connection closed unexpectedly with close code "
                            f"{ws.close_code}"
                        )
                    break
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise RuntimeError(f"WebSocket error for job {job_id}: {ws.exception()}")

    def get_version(self) -> str:
        r = self._do_request("GET", "/api/version")
        if r.status_code == 200:
            return r.json().get("version")
        self._raise_error(r)

    def get_address(self) -> str:
        return self._address


def _local_token() -> str:
    from zray._config import config

    if config.token:  # ZRAY_TOKEN, else RAY_AUTH_TOKEN
        return config.token
    from zray._private.common import cluster_record
    from zray._private.wire import security

    creds = security.local_credentials("", cluster_record.local_sessions())
    return creds.token if creds is not None else ""


def api_server_url(address: Optional[str]) -> str:
    """The dashboard's http(s) URL for `address`, in Ray's order: RAY_API_SERVER_ADDRESS,
    then RAY_ADDRESS, then `address`; a cluster address is looked up in its head's KV."""
    from zray._config import config

    # config.address: RAY_ADDRESS (or ZRAY_ADDRESS), read once like every setting.
    address = config.api_server_address or config.address or address
    if address and address.startswith(("http://", "https://")):
        return address
    if address and "://" in address and not address.startswith("tcp://"):
        raise ValueError(
            f"zray's Jobs API speaks http(s):// only, not {address.split('://')[0]}://"
        )
    from zray._private.common import cluster_info
    from zray.util.state._transport import Connection
    from zray._private.wire import protocol as P

    try:
        connection = Connection(cluster_info.resolve_address(address))
        reply = connection.ask_head(P.KvGet(KV_NAMESPACE_DASHBOARD, DASHBOARD_ADDRESS_KEY, 0), 10)
    except Exception as exc:
        if address is None:
            logger.info("No address provided, defaulting to %s.", DEFAULT_DASHBOARD_ADDRESS)
            return DEFAULT_DASHBOARD_ADDRESS
        raise ConnectionError(f"Failed to connect to the zray cluster at {address}: {exc}")
    if not reply.found:
        raise ValueError(
            "Couldn't obtain the API server address from the head: the cluster runs without "
            "a dashboard (start it with --include-dashboard=true)"
        )
    return "http://" + reply.value.decode()
