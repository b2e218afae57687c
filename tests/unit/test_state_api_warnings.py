"""Ray's errors, warnings and notes of the state API's client (ray/util/state/api.py in Ray
2.60) from the answers its sources give: a node that does not answer, rows truncated at the
source or left out by `limit`, and an answer slow to come. The cluster is a stand-in that
answers as the head and nodes do."""

from __future__ import annotations

import logging
import time
import warnings

import pytest

from zray._private.wire import protocol as P
from zray.util.state.api import StateApiClient
from zray.util.state.common import ListApiOptions, StateResource, SummaryResource
from zray.util.state.exception import RayStateApiException

HEAD = "tcp://127.0.0.1:1"
NODES = [{"state": "ALIVE", "_address": "tcp://n1"}, {"state": "ALIVE", "_address": "tcp://n2"}]


class StandIn:
    """Answers as the cluster would: `answer(address, message)` for each request, after
    `delay` seconds."""

    def __init__(self, answer, delay: float = 0.0):
        self.head = HEAD
        self.answer = answer
        self.delay = delay

    def gather(self, requests, timeout):
        time.sleep(self.delay)
        return [self.answer(address, msg) for address, msg in requests]

    def ask_head(self, msg, timeout):
        return self.answer(HEAD, msg)


def one_node_silent(address, msg):
    if isinstance(msg, P.GetStateTable):
        return P.StateTable("nodes", NODES)
    if address == "tcp://n2":
        return None  # never answered
    if msg.summarize:
        part = {"summary": {}, "total_pids": [], "total_ips": []}
        return P.StateRows([part], 0, 0, 0)
    return P.StateRows([], 0, 0, 0)


def said(call) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught]


def test_a_node_that_does_not_answer_raises_or_is_warned_of():
    client = StateApiClient._over(StandIn(one_node_silent))
    options = ListApiOptions(timeout=4)
    with pytest.raises(
        RayStateApiException,
        match="Failed to retrieve all workers from the cluster becausethey are not reachable "
        "due to query failures to the data sources.",
    ):
        client.list(StateResource.WORKERS, options, raise_on_missing_output=True)
    assert said(
        lambda: client.list(
            StateResource.WORKERS, options, raise_on_missing_output=False, _explain=True
        )
    ) == [
        "The returned data may contain incomplete result. Failed to query data from raylet. "
        "Queried 2 raylet and 1 raylet failed to reply. It is due to (1) raylet is unexpectedly "
        "failed. (2) raylet is overloaded. (3) There's an unexpected network issue. Please check "
        "the node.log to find the root cause."
    ]
    response = client._list_response(StateResource.WORKERS, options).asdict([])
    assert response["partial_failure_warning"].startswith("The returned data may contain")


def test_rows_truncated_at_the_source_are_said_and_a_summary_says_no_limit():
    def truncated(address, msg):
        if msg.summarize:  # more actors than a summary lists (10,000)
            summary = {"summary": {}, "total_actors": 10_000, "summary_by": "class"}
            return P.StateRows([summary], 20_000, 12_000, 12_000)
        return P.StateRows([], 12, 10, 4)

    client = StateApiClient._over(StandIn(truncated))
    texts = said(
        lambda: client.list(
            StateResource.NODES,
            ListApiOptions(limit=2),
            raise_on_missing_output=False,
            _explain=True,
        )
    )
    assert texts == [
        "The returned data may contain incomplete result. 10 (12 total from the cluster) nodes "
        "are retrieved from the data source. 2 entries have been truncated. Max of 10 entries "
        "are retrieved from data source to prevent over-sized payloads.",
        "Limit last 0 entries (Total 4). Use `--filter` to reduce the amount of data to return or "
        "setting a higher limit with `--limit` to see all data. ",
    ]
    texts = said(
        lambda: client.summary(SummaryResource.ACTORS, raise_on_missing_output=False, _explain=True)
    )
    assert len(texts) == 1 and "12000 (20000 total from the cluster) actors" in texts[0]


def test_a_task_summary_counting_fewer_than_were_listed_says_data_is_missing():
    def evicted(address, msg):
        summary = {"summary": {}, "total_tasks": 3, "total_actor_tasks": 0}
        summary.update(total_actor_scheduled=0, summary_by="func_name")
        return P.StateRows([summary], 5, 5, 5)

    client = StateApiClient._over(StandIn(evicted))
    texts = said(
        lambda: client.summary(SummaryResource.TASKS, raise_on_missing_output=True, _explain=True)
    )
    assert texts == [
        "There is missing data in this aggregation. "
        "Possibly due to task data being evicted to preserve memory."
    ]


class Recorded(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_slow_answer_is_noted_with_explain_only():
    def slow(address, msg):
        return P.StateRows([], 0, 0, 0)

    client = StateApiClient._over(StandIn(slow, delay=1.4))
    # On the module's own logger: zray's logging setup in another test's init may have
    # stopped it propagating to pytest's caplog.
    notes = logging.getLogger("zray.util.state.api")
    recorded, level = Recorded(), notes.level
    notes.addHandler(recorded)
    notes.setLevel(logging.INFO)
    try:
        client.list(StateResource.NODES, ListApiOptions(timeout=4), raise_on_missing_output=True)
        assert recorded.messages == []
        client.list(
            StateResource.NODES,
            ListApiOptions(timeout=4),
            raise_on_missing_output=True,
            _explain=True,
        )
        assert recorded.messages == [
            f"(0.5 / 4 seconds) Waiting for the response from the API server address "
            f"{HEAD}/api/v0/nodes.",
            f"(1.0 / 4 seconds) Waiting for the response from the API server address "
            f"{HEAD}/api/v0/nodes.",
        ]
        time.sleep(0.9)  # past the third note's time (2 s): it was cancelled with the answer
        assert len(recorded.messages) == 2
    finally:
        notes.removeHandler(recorded)
        notes.setLevel(level)
