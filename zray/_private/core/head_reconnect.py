"""A driver's or worker's side of a head restart (zray/_private/wire/head_link.py says how the
head is found again). A driver tells the head its job goes on (`ResumeJob`); a worker only
needs to know the head listens again (any question will do). Both then re-subscribe to the
actors they hold handles to: subscriptions lived in the head's memory only.
"""

from __future__ import annotations

import logging
import os

from zray._config import config
from zray._private.wire import protocol as P
from zray._private.wire.head_link import HeadLink, HeadUnavailableError

logger = logging.getLogger(__name__)


def attach(core) -> HeadLink:
    return HeadLink(
        core.endpoint,
        core.requests,
        core.head_address,
        config.head_reconnect_timeout_s,
        lambda link: _resume(core, link),
        logging.WARNING if core.mode == "driver" else logging.INFO,
    )


def tick(core, now: float) -> None:
    """From the I/O thread's housekeeping."""
    link = core.head_link
    if link.check(now) or not link.down_since:
        return
    if link.expired(now):
        error = HeadUnavailableError(
            f"the head at {link.address} went away and did not come back within "
            f"head_reconnect_timeout_s={link.window_s:g}s"
        )
        logger.error("%s: its pending requests fail", error)
        # The re-registration stays: a head that comes back later still gets this process.
        core.requests.fail_replayable(error, keep=getattr(core, "_resume_seq", 0))


def _resume(core, link: HeadLink) -> None:
    previous = getattr(core, "_resume_seq", 0)
    if previous:
        core.requests.forget(previous)
    if core.mode == "driver":
        msg = P.ResumeJob(
            core.job_id,
            core.worker_id,
            core.namespace,
            os.getpid(),
            core.job_metadata,
            core.default_actor_lifetime,
        )
    else:
        msg = P.GetNodes(False)
    core._resume_seq = core.requests.send(
        link.address, msg, lambda reply, payload: _resumed(core, link, reply)
    )


def _resumed(core, link: HeadLink, reply) -> None:
    core._resume_seq = 0
    if isinstance(reply, P.Error):
        logger.error("the head refused this process's return: %s", reply.message)
        return
    replayed = link.restored()
    if core.actor_submitter is not None:
        core.actor_submitter.resubscribe()
    logger.info("reconnected to the head at %s (%d request(s) sent again)", link.address, replayed)
