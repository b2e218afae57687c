"""How the state API reaches the cluster: through this process's core worker when it is connected
(a driver or a task asking about its own cluster), else from a throwaway endpoint with the
credentials of the cluster at `address` (the CLI, or a script that never called init).

Questions to several nodes go out at once and are waited for together, so one slow node costs
the timeout once, not once per node.
"""

from __future__ import annotations

import threading
import time

from zray._private.wire import protocol as P
from zray._private.core import runtime
from zray.util.state.exception import RayStateApiException, ServerUnavailable


class Connection:
    def __init__(self, address: str | None):
        from zray._private.common import cluster_info
        from zray._private.wire import security

        self.core = runtime.core if address in (None, "auto") else None
        if self.core is not None:
            self.head = self.core.head_address
            return
        try:
            self.head = cluster_info.resolve_address(address)
            self.creds = cluster_info.credentials_for(self.head)
        except (ConnectionError, security.AuthenticationError) as exc:
            raise ServerUnavailable(f"Failed to connect to the zray cluster: {exc}") from exc

    def ask_head(self, msg, timeout: float):
        reply = self.gather([(self.head, msg)], timeout)[0]
        if reply is None:
            raise ServerUnavailable(f"The head at {self.head} did not answer within {timeout}s.")
        return _checked(reply)

    def gather(self, requests: list, timeout: float) -> list:
        """The answer to each (address, message), or None for those unanswered in time."""
        if not requests:
            return []
        if self.core is not None:
            return self._gather_core(requests, timeout)
        return self._gather_own(requests, timeout)

    def _gather_core(self, requests: list, timeout: float) -> list:
        answers: list = [None] * len(requests)
        remaining = [len(requests)]
        done = threading.Event()
        lock = threading.Lock()

        def answered(index, reply, _payload):
            with lock:
                answers[index] = reply
                remaining[0] -= 1
                if not remaining[0]:
                    done.set()

        seqs = [
            self.core.requests.send(address, msg, lambda r, p, i=i: answered(i, r, p))
            for i, (address, msg) in enumerate(requests)
        ]
        if not done.wait(timeout):
            for seq in seqs:
                self.core.requests.forget(seq)
        with lock:
            return list(answers)

    def _gather_own(self, requests: list, timeout: float) -> list:
        import zmq

        from zray._fast import random_id
        from zray._private.wire.transport import REPLY, Endpoint, serve_context

        ctx = zmq.Context()
        serve_context(ctx, self.creds)
        endpoint = Endpoint(b"state-" + random_id(8), ["tcp://127.0.0.1:*"], ctx, self.creds)
        answers: list = [None] * len(requests)
        try:
            for seq, (address, msg) in enumerate(requests, 1):
                endpoint.send(address, msg, seq=seq)
            poller = zmq.Poller()
            poller.register(endpoint.inbox, zmq.POLLIN)
            deadline = time.monotonic() + timeout
            missing = len(requests)
            while missing:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                if not poller.poll(min(left_ms, 100)):
                    continue
                received = endpoint.receive()
                if not received or not received[3] & REPLY:
                    continue
                index = received[2] - 1
                if 0 <= index < len(requests) and answers[index] is None:
                    answers[index] = received[1]
                    missing -= 1
            return answers
        finally:
            endpoint.close()
            ctx.term()


def _checked(reply):
    if isinstance(reply, P.Error):
        raise RayStateApiException(f"The cluster could not answer: {reply.message}")
    return reply
