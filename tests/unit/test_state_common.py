"""The state API's pure parts: filtering as Ray's API server does it, the CLI's --filter parsing
and layouts, and how a node reports how its workers ended."""

import signal

import pytest

from zray._private.node.worker_table import WorkerTable
from zray.scripts import state_cli
from zray.util.state.common import (
    ActorState,
    JobState,
    ListApiOptions,
    NodeState,
    WorkerState,
    do_filter,
)

NODE = {
    "node_id": "aa",
    "node_ip": "10.0.0.1",
    "is_head_node": True,
    "state": "ALIVE",
    "state_message": None,
    "node_name": "10.0.0.1",
    "resources_total": {"CPU": 1.0},
    "labels": {},
    "start_time_ms": 5,
    "end_time_ms": 0,
}


def test_filters_ignore_case_convert_text_and_drop_detail_columns():
    dead = dict(NODE, node_id="bb", state="DEAD", is_head_node=False)
    rows = [NODE, dead]
    assert [r["node_id"] for r in do_filter(rows, [("STATE", "=", "alive")], NodeState, False)] == [
        "aa"
    ]
    assert [
        r["node_id"] for r in do_filter(rows, [("is_head_node", "=", "false")], NodeState, False)
    ] == ["bb"]
    assert [
        r["node_id"] for r in do_filter(rows, [("state", "!=", "Alive")], NodeState, False)
    ] == ["bb"]
    assert "start_time_ms" not in do_filter(rows, [], NodeState, False)[0]
    assert do_filter(rows, [], NodeState, True)[0]["start_time_ms"] == 5


def test_filter_errors_are_rays():
    with pytest.raises(
        ValueError,
        match=r"^The given filter column resources_total is not "
        r"supported",
    ):
        do_filter([NODE], [("resources_total", "=", "x")], NodeState, False)
    with pytest.raises(
        ValueError,
        match=r"Invalid filter `--filter pid x` for a int type "
        r"column",
    ):
        do_filter([], [("pid", "=", "x")], WorkerState, False)
    with pytest.raises(ValueError, match="Failed to convert a value x"):
        do_filter([{"pid": 3}], [("pid", "=", "x")], ActorState, False)  # Optional[int]
    with pytest.raises(ValueError, match="Unsupported filter predicate ~"):
        ListApiOptions(filters=[("state", "~", "x")])
    with pytest.raises(ValueError, match="too many values to unpack"):
        ListApiOptions(filters=[("state", "=", "x", "y")])


def test_state_objects_read_like_dicts_and_jobs_keep_their_driver_info():
    job = JobState(
        type="DRIVER",
        job_id="01000000",
        status="RUNNING",
        entrypoint="",
        driver_info={"id": "01000000", "node_ip_address": "1.2.3.4", "pid": "7"},
    )
    assert job.driver_info.pid == "7" and job["status"] == "RUNNING"
    assert job.get("missing", 1) == 1
    assert JobState.list_columns(detail=False)[:2] == ["job_id", "submission_id"]
    assert JobState.asdict(job)["driver_info"] == {
        "id": "01000000",
        "node_ip_address": "1.2.3.4",
        "pid": "7",
    }
    assert (
        "num_restarts" in ActorState.list_columns()
        and "num_restarts" not in ActorState.list_columns(detail=False)
    )


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("state=ALIVE", ("state", "=", "ALIVE")),
        ("state!=DEAD", ("state", "!=", "DEAD")),
        ("name=a=b", ("name", "=", "a=b")),
        ("name=a!=b", ("name", "=", "a!=b")),
    ],
)
def test_filter_flag_parsing(text, parsed):
    assert state_cli.parse_filter(text) == parsed


@pytest.mark.parametrize("text", ["state", "=ALIVE", "state="])
def test_bad_filter_flags(text):
    with pytest.raises(state_cli.UsageError, match="is invalid"):
        state_cli.parse_filter(text)


def test_yaml_output_reads_back_as_the_data():
    yaml = pytest.importorskip("yaml")
    data = [
        {
            "id": "01000000",
            "name": "",
            "flag": True,
            "none": None,
            "n": 3,
            "f": 1.5,
            "nested": {"a: b": [1, {"x": "yes"}], "empty": {}},
            "list": [],
            "text": "e5",
        }
    ]
    assert yaml.safe_load(state_cli.to_yaml(data)) == data


def test_plain_table_aligns_multiline_cells():
    table = state_cli.plain_table(["A", "B"], [["x", "1\n22"], ["yyy", "3"]])
    assert table.splitlines() == ["   A    B", "0  x    1", "        22", "1  yyy  3"]


def test_worker_table_keeps_the_latest_exited_and_how_they_ended():
    table = WorkerTable()
    for n, (kind, code) in enumerate(
        [("driver", None), ("worker", -signal.SIGKILL), ("worker", 3)]
    ):
        table.joined(bytes([n]), kind, 100 + n)
        table.left(bytes([n]), code)
    table.joined(b"\x09", "worker", 109)
    rows = {r["pid"]: r for r in table.rows("nn", "1.2.3.4")}
    assert rows[109]["is_alive"] and rows[109]["exit_type"] is None
    assert [rows[p]["exit_type"] for p in (100, 101, 102)] == [
        "INTENDED_USER_EXIT",
        "INTENDED_SYSTEM_EXIT",
        "SYSTEM_ERROR",
    ]
    assert rows[100]["worker_type"] == "DRIVER" and "exit code 3" in rows[102]["exit_detail"]
    for n in range(2000):
        table.joined(n.to_bytes(4, "big"), "worker", n)
        table.left(n.to_bytes(4, "big"), 0)
    assert len(table.rows("nn", "ip")) == 1 + 1000
