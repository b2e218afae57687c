"""The node's sum of its processes' metric reports (zray/_private/node/metrics_table.py)."""

import pytest

from zray._private.node.metrics_table import BadReport, MetricsTable

COUNTER = ["counter", "calls", "", ["k"], [], [[["a"], 2.0]]]
GAUGE = ["gauge", "depth", "", [], [], [[[], 7.0]]]
HISTOGRAM = ["histogram", "lat", "", [], [1.0], [[[], [[1, 2], 5.5, 3]]]]


def family(table, name):
    return {f[1]: f[5] for f in table.families()}[name]


def test_counters_and_histograms_sum_over_processes_and_survive_their_exit():
    table = MetricsTable()
    table.report(b"w1", [COUNTER, GAUGE, HISTOGRAM], [["f", "FINISHED", "owner", "0", 4]])
    table.report(b"w2", [COUNTER, HISTOGRAM], [["f", "FINISHED", "owner", "0", 1]])
    assert family(table, "calls") == {("a",): 4.0}
    assert family(table, "lat") == {(): [[2, 4], 11.0, 6]}
    table.process_exited(b"w1")
    assert family(table, "calls") == {("a",): 4.0}  # a counter never goes down
    assert family(table, "lat") == {(): [[2, 4], 11.0, 6]}
    assert family(table, "depth") == {}  # a dead process's gauge goes, as in Ray
    assert table.task_counts() == {("f", "FINISHED", "owner", "0"): 5}


def test_a_report_replaces_the_processes_earlier_totals():
    table = MetricsTable()
    table.report(b"w1", [COUNTER], [["f", "RUNNING", "executor", "0", 1]])
    table.report(b"w1", [["counter", "calls", "", ["k"], [], [[["a"], 9.0]]]], [])
    assert family(table, "calls") == {("a",): 9.0}
    assert table.task_counts() == {}


@pytest.mark.parametrize(
    "row",
    [
        ["summary", "x", "", [], [], []],
        ["counter", "calls", "", ["k"], [], [[["a", "b"], 1.0]]],  # two values, one key
        ["gauge", "calls", "", ["k"], [], [[["a"], 1.0]]],  # known as a counter
        ["histogram", "h", "", [], [1.0], [[[], [[1], 1.0, 1]]]],  # a bucket short
        ["counter", "c"],
        "garbage",
    ],
)
def test_bad_rows_are_refused_and_the_good_ones_kept(row):
    table = MetricsTable()
    table.report(b"w0", [COUNTER], [])
    with pytest.raises(BadReport):
        table.report(b"w1", [row, COUNTER], [])
    assert family(table, "calls") == {("a",): 4.0}


def test_bad_task_rows_are_refused():
    with pytest.raises(BadReport):
        MetricsTable().report(b"w1", [], [["f", "RUNNING", "executor", 0, 1]])
