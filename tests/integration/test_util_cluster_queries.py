"""zray.util.list_named_actors and get_node_ip_address on a real cluster."""

import time

import pytest


@pytest.fixture(scope="module")
def Named(ray):
    @ray.remote
    class Named:
        def ping(self):
            return True

        def names(self, all_namespaces):
            return ray.util.list_named_actors(all_namespaces=all_namespaces)

    return Named


def _eventually(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_names_in_this_namespace_and_in_all(ray, Named):
    here = Named.options(name="util-here").remote()
    there = Named.options(name="util-there", namespace="util-elsewhere").remote()
    unnamed = Named.remote()
    ray.get([here.ping.remote(), there.ping.remote(), unnamed.ping.remote()], timeout=30)

    assert "util-here" in ray.util.list_named_actors()
    assert "util-there" not in ray.util.list_named_actors()
    everything = ray.util.list_named_actors(all_namespaces=True)
    namespace = ray.get_runtime_context().namespace
    assert {"name": "util-here", "namespace": namespace} in everything
    assert {"name": "util-there", "namespace": "util-elsewhere"} in everything
    assert all(set(entry) == {"name", "namespace"} for entry in everything)
    for handle in (here, there, unnamed):
        ray.kill(handle)


def test_an_actor_lists_the_names_of_its_job_namespace(ray, Named):
    named = Named.options(name="util-asker").remote()
    assert "util-asker" in ray.get(named.names.remote(False), timeout=30)
    assert {"name": "util-asker", "namespace": ray.get_runtime_context().namespace} in ray.get(
        named.names.remote(True), timeout=30
    )
    ray.kill(named)


def test_a_killed_actor_leaves_the_list(ray, Named):
    doomed = Named.options(name="util-doomed").remote()
    ray.get(doomed.ping.remote(), timeout=30)
    assert "util-doomed" in ray.util.list_named_actors()
    ray.kill(doomed)
    assert _eventually(lambda: "util-doomed" not in ray.util.list_named_actors())


def test_node_ip_is_the_address_the_node_serves_on(ray):
    @ray.remote
    def ip_in_task():
        return ray.util.get_node_ip_address()

    node_ip = ray.nodes()[0]["NodeManagerAddress"]
    assert ray.util.get_node_ip_address() == node_ip
    assert ray.get(ip_in_task.remote(), timeout=30) == node_ip
