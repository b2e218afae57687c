"""The node daemon's side of runtime envs: a worker for a non-default env starts once the env
is set up on this node (runtime_env_agent.py); a setup that fails or times out fails the lease
requests waiting for that env with RuntimeEnvSetupError, carrying the reason."""

from __future__ import annotations

import logging

from zray._private.common import packaging
from zray._private.wire import protocol as P
from zray._private.node.runtime_env_agent import FAILED, READY, EnvSetups

logger = logging.getLogger(__name__)


class NodeEnvs:
    def __init__(self, node):
        self.node = node
        self.setups = EnvSetups(node.session_dir, self._fetch)
        self.waiting_starts: dict[str, int] = {}  # env -> workers to start once it is ready

    @property
    def fd(self) -> int:
        return self.setups.fd

    def _fetch(self, uri: str, callback):
        node = self.node

        def on_reply(reply, payload):
            callback(reply.value if isinstance(reply, P.KvValue) and reply.found else None)

        # No waiting for the key: a driver stores its package (acknowledged) before it submits
        # any task of the env, so a package missing now is missing for good.
        node.requests.send(
            node.head_address, P.KvGet(packaging.KV_NAMESPACE, uri.encode(), 0.0), on_reply
        )

    def start_worker(self, runtime_env: str):
        """Carries out StartWorker(runtime_env)."""
        node = self.node
        if node.pool.refusing():
            node.scheduler._started(runtime_env)  # a start that never happens, as in node.py
            node._refuse_waiting_leases()
            return
        state = self.setups.request(runtime_env)
        if state.status == READY:
            node.pool.spawn(runtime_env, state.context)
        else:
            self.waiting_starts[runtime_env] = self.waiting_starts.get(runtime_env, 0) + 1

    def on_ready(self):
        self._settle(self.setups.completed())

    def tick(self, now: float):
        self._settle(self.setups.expired(now))

    def _settle(self, finished: list):
        node = self.node
        for runtime_env, state in finished:
            count = self.waiting_starts.pop(runtime_env, 0)
            if state.status != FAILED:
                for _ in range(count):
                    node.pool.spawn(runtime_env, state.context)
                continue
            logger.warning("runtime env setup failed: %s", state.error)
            self._fail_requests(runtime_env, state.error)
            for _ in range(count):
                node._dispatch(node.scheduler.worker_start_failed(runtime_env))

    def _fail_requests(self, runtime_env: str, error: str):
        node = self.node
        scheduler = node.scheduler
        reply = P.Error("RuntimeEnvSetupError", error)
        for key, request in list(scheduler.queue.items()):
            if request.runtime_env == runtime_env:
                scheduler.cancel_request(*key)
                node.lease_meta.pop(key, None)
                node.endpoint.reply(request.client, reply, node.lease_seq.pop(key, 0))

    def worker_gone(self, worker_id: bytes) -> str:
        """The env of a worker that exited (or never registered), forgotten from now on."""
        return self.node.pool.env_of.pop(worker_id, "")

    def shutdown(self):
        self.setups.shutdown()
