"""Ray's counts of a state query (`total` held by the data source, `num_after_truncation`
returned by it, `num_filtered` passing the filters) for every resource, and the errors and
warnings Ray derives from them: through `zray.util.state`, the CLI and the dashboard's
/api/v0/. The cluster's data sources return at most 3 rows (Ray's
RAY_MAX_LIMIT_FROM_DATA_SOURCE, here ZRAY_MAX_LIMIT_FROM_DATA_SOURCE), so a handful of rows
is enough to be truncated."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.conftest import assert_no_leaks, zray_segments, zray_sessions
from tests.head_cluster import wait_for
from tests.integration.test_dashboard import free_port, http, token_of_cluster
from zray.scripts import cli
from zray.util import state
from zray.util.state.exception import RayStateApiException

SOURCE_LIMIT = 3
ACTORS = 5


@pytest.fixture(scope="module")
def cluster():
    import zray

    patch = pytest.MonkeyPatch()
    patch.setenv("ZRAY_MAX_LIMIT_FROM_DATA_SOURCE", str(SOURCE_LIMIT))
    before_segments, before_sessions = zray_segments(), zray_sessions()
    context = zray.init(num_cpus=1, dashboard_port=free_port(), include_dashboard=True)

    @zray.remote(num_cpus=0)
    class Counted:
        def ping(self):
            return 1

    actors = [Counted.remote() for _ in range(ACTORS)]
    assert zray.get([a.ping.remote() for a in actors], timeout=60) == [1] * ACTORS
    for actor in actors[:2]:
        zray.kill(actor)
    wait_for(
        lambda: (
            len(state.list_actors(filters=[("state", "=", "DEAD")], raise_on_missing_output=False))
            == 2
        )
    )
    try:
        yield zray, "http://" + context.dashboard_url, actors
    finally:
        zray.shutdown()
        patch.undo()
        assert_no_leaks(before_segments, before_sessions)


def explained(call) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught]


def test_a_listing_past_the_source_limit_raises_or_warns_with_rays_numbers(cluster):
    with pytest.raises(
        RayStateApiException,
        match=r"Failed to retrieve all 5 actors from the cluster because they are not "
        r"reachable due to data truncation. It happens when the returned data is too large "
        r"\(> 3\)",
    ):
        state.list_actors()
    said = explained(
        lambda: state.list_actors(limit=1, raise_on_missing_output=False, _explain=True)
    )
    assert said == [
        "The returned data may contain incomplete result. 3 (5 total from the cluster) actors "
        "are retrieved from the data source. 2 entries have been truncated. Max of 3 entries "
        "are retrieved from data source to prevent over-sized payloads.",
        "Limit last 1 entries (Total 3). Use `--filter` to reduce the amount of data to return "
        "or setting a higher limit with `--limit` to see all data. ",
    ]
    # Without _explain nothing is said; a source filter counts what it skipped as returned.
    assert explained(lambda: state.list_actors(raise_on_missing_output=False)) == []
    dead = state.list_actors(filters=[("state", "=", "DEAD")], _explain=True)
    assert len(dead) == 2


def test_the_summary_counts_its_listing_without_the_limits_warning(cluster):
    with pytest.raises(RayStateApiException, match="Failed to retrieve all 5 actors"):
        state.summarize_actors()
    said = explained(lambda: state.summarize_actors(raise_on_missing_output=False, _explain=True))
    assert len(said) == 1 and "3 (5 total from the cluster) actors" in said[0]


def test_each_resource_counts_as_rays_source_does(cluster):
    import zray

    groups = [zray.util.placement_group([{"CPU": 0.01}]) for _ in range(4)]
    try:
        zray.get([g.ready() for g in groups], timeout=60)
        with pytest.raises(RayStateApiException, match="Failed to retrieve all 4 placement_groups"):
            state.list_placement_groups()
        assert len(state.list_placement_groups(raise_on_missing_output=False)) == SOURCE_LIMIT
    finally:
        for group in groups:
            zray.util.remove_placement_group(group)
    # Ray's GCS counts a node its "=" state filter skipped in `total` only, and every worker
    # in `total` when asked for live ones: both read as truncated, as they do in Ray.
    with pytest.raises(RayStateApiException, match="Failed to retrieve all 1 nodes"):
        state.list_nodes(filters=[("state", "=", "DEAD")])
    assert state.list_nodes(filters=[("state", "!=", "DEAD")], _explain=True)
    # The driver and the three live actors' workers at least: past the node's limit.
    with pytest.raises(RayStateApiException, match=r"Failed to retrieve all \d+ workers"):
        state.list_workers()
    assert len(state.list_workers(raise_on_missing_output=False)) == SOURCE_LIMIT
    # Objects: each node truncates its own rows, the asker sums the nodes' counts.
    held = [zray.put(i) for i in range(SOURCE_LIMIT + 2)]
    said = explained(lambda: state.list_objects(raise_on_missing_output=False, _explain=True))
    assert any(f"{SOURCE_LIMIT} (" in text and "objects are retrieved" in text for text in said)
    del held


def test_the_dashboards_api_carries_rays_counts(cluster):
    _zray, base, _actors = cluster
    auth = {"Authorization": f"Bearer {token_of_cluster()}"}
    status, _, body = http(f"{base}/api/v0/actors?limit=1", auth)
    reply = json.loads(body)["data"]["result"]
    assert status == 200
    assert (reply["total"], reply["num_after_truncation"], reply["num_filtered"]) == (5, 3, 3)
    assert len(reply["result"]) == 1
    query = "filter_keys=state&filter_predicates==&filter_values=DEAD"
    reply = json.loads(http(f"{base}/api/v0/actors?{query}", auth)[2])["data"]["result"]
    assert (reply["total"], reply["num_after_truncation"], reply["num_filtered"]) == (5, 5, 2)
    reply = json.loads(http(f"{base}/api/v0/actors/summarize", auth)[2])["data"]["result"]
    assert (reply["total"], reply["num_after_truncation"], reply["num_filtered"]) == (5, 3, 3)
    assert reply["result"]["node_id_to_summary"]["cluster"]["total_actors"] == 3
    reply = json.loads(http(f"{base}/api/v0/objects/summarize", auth)[2])["data"]["result"]
    assert reply["warnings"] and "Callsite is not being recorded" in reply["warnings"][0]


def test_the_cli_prints_rays_warnings(cluster, capsys):
    assert cli.main(["list", "actors", "--limit", "2"]) == 0
    out, err = capsys.readouterr()
    assert "3 (5 total from the cluster) actors are retrieved from the data source" in err
    assert "Limit last 2 entries (Total 3)" in err
    assert out.count("Counted") == 2
    assert cli.main(["list", "actors", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(json.loads(out)) == 3  # json and yaml print no warnings, as Ray's
    assert cli.main(["summary", "actors"]) == 0
    out, err = capsys.readouterr()
    assert "3 (5 total from the cluster) actors" in err and "Limit last" not in err
