"""init()'s dashboard arguments: include_dashboard, dashboard_port."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_dashboard import free_port, http, token_of_cluster


def test_include_dashboard_false_starts_none(fresh):
    context = fresh.init(num_cpus=1, include_dashboard=False)
    assert context.dashboard_url is None and "webui_url" not in context.address_info


def test_dashboard_port_is_honoured_and_a_taken_one_fails_as_in_ray(fresh):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = fresh.init(num_cpus=1, dashboard_port=port)
    assert context.dashboard_url == f"127.0.0.1:{port}"
    status, _, body = http(
        f"http://127.0.0.1:{port}/api/version",
        {"Authorization": f"Bearer {token_of_cluster()}"},
    )
    assert status == 200
    fresh.shutdown()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        # As Ray: asked for outright, a dashboard that cannot start fails init() ...
        with pytest.raises(fresh.exceptions.RaySystemError, match="dashboard cannot listen"):
            fresh.init(num_cpus=1, dashboard_port=port, include_dashboard=True)
        # ... and by default the cluster starts without one (the node logs why).
        context = fresh.init(num_cpus=1, dashboard_port=port)
        assert context.dashboard_url is None


def test_a_programs_cluster_starts_its_dashboard_at_the_first_request(fresh):
    """init() pays nothing for the dashboard until someone opens it."""
    from tests.conftest import child_processes_running

    def dashboards():
        return child_processes_running("zray.dashboard")

    context = fresh.init(num_cpus=1, dashboard_port=free_port(), include_dashboard=True)
    time.sleep(0.5)
    assert dashboards() == []
    status, _, _ = http(
        f"http://{context.dashboard_url}/api/version",
        {"Authorization": f"Bearer {token_of_cluster()}"},
    )
    assert status == 200 and len(dashboards()) == 1


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"dashboard_port": "8265"}, ValueError),
        ({"dashboard_port": 70000}, ValueError),
        ({"dashboard_host": 8265}, TypeError),
        ({"include_dashboard": "yes"}, TypeError),
    ],
)
def test_bad_dashboard_arguments_are_refused_before_anything_starts(fresh, kwargs, error):
    with pytest.raises(error, match="dashboard"):
        fresh.init(num_cpus=1, **kwargs)
    assert not fresh.is_initialized()
