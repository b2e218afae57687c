"""Ray's API surface and its answers to bad input."""

import inspect
import json
import os
import sys
import time

import pytest

from tests.worker_output import worker_output

SURFACE = json.load(open(os.path.join(os.path.dirname(__file__), "..", "data", "ray_surface.json")))

CORE_API = [
    "init",
    "shutdown",
    "is_initialized",
    "get",
    "put",
    "wait",
    "cancel",
    "nodes",
    "cluster_resources",
    "available_resources",
    "get_runtime_context",
    "get_gpu_ids",
    "timeline",
]


@pytest.mark.parametrize("name", CORE_API)
def test_signature_matches_ray(name):
    import zray

    ray_params = SURFACE["api"][name]["signature"]["parameters"]
    ours = inspect.signature(getattr(zray, name)).parameters
    assert [p["name"] for p in ray_params] == list(ours), name
    for p in ray_params:
        mine = ours[p["name"]]
        assert mine.kind.name == p["kind"], (name, p["name"])
        if "default" in p:
            assert repr(mine.default) == p["default"], (name, p["name"])


def test_object_ref_methods_exist():
    import zray

    wanted = {
        "binary",
        "hex",
        "is_nil",
        "task_id",
        "job_id",
        "owner_address",
        "future",
        "as_future",
        "call_site",
        "nil",
    }
    assert wanted <= set(SURFACE["object_ref"]["ObjectRef"]["public_members"])
    for name in wanted:
        assert hasattr(zray.ObjectRef, name), name


def test_runtime_context_methods_exist():
    from zray.runtime_context import RuntimeContext

    for name in SURFACE["runtime_context"]["members"]:
        assert hasattr(RuntimeContext, name), name


def test_calling_remote_function_directly(ray):
    @ray.remote
    def f():
        return 1

    with pytest.raises(
        TypeError, match=r"Remote functions cannot be called directly.*f\.remote\(\)"
    ):
        f()


def test_get_of_non_ref(ray):
    with pytest.raises(ValueError, match="Invalid type of object refs"):
        ray.get(123)
    with pytest.raises(TypeError, match="not an ray.ObjectRef"):
        ray.get([ray.put(1), 123])


def test_unknown_option(ray):
    with pytest.raises(ValueError, match="Invalid option keyword foo for remote functions"):

        @ray.remote(foo=1)
        def f():
            pass

    @ray.remote
    def g():
        return 1

    with pytest.raises(ValueError, match="Invalid option keyword bar"):
        g.options(bar=2)
    with pytest.raises(TypeError, match="num_cpus"):
        g.options(num_cpus="two")
    with pytest.raises(ValueError, match="whole numbers"):
        g.options(num_cpus=1.5).remote()
    assert ray.get(g.options(num_cpus=0.5, name="renamed", max_retries=0).remote()) == 1


def test_options_without_effect_are_accepted(ray):
    @ray.remote(max_calls=2, enable_task_events=False, runtime_env={})
    def f():
        return 1

    assert ray.get(f.options(runtime_env=None).remote()) == 1


@pytest.mark.parametrize(
    "option, value",
    [
        ("runtime_env", {"conda": "env"}),
        ("label_selector", {"zone": "a"}),
        ("accelerator_type", "A100"),
    ],
)
def test_options_that_would_change_results_are_refused(ray, option, value):
    with pytest.raises(NotImplementedError, match=option):

        @ray.remote(**{option: value})
        def f():
            return 1

    @ray.remote
    def g():
        return 1

    with pytest.raises(NotImplementedError, match=option):
        g.options(**{option: value})


def test_a_bundle_index_without_a_placement_group_is_refused(ray):
    @ray.remote
    def f():
        return 1

    with (
        pytest.raises(ValueError, match="bundle index must be -1"),
        pytest.warns(DeprecationWarning, match="placement_group_bundle_index"),
    ):
        f.options(placement_group_bundle_index=0).remote()


def test_local_mode_is_refused_as_in_ray_2_60():
    import zray

    with pytest.raises(RuntimeError, match="`local_mode` is no longer supported"):
        zray.init(local_mode=True)  # before the already-connected check, as in Ray


def test_wait_bad_input(ray):
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.wait(ref)
    with pytest.raises(ValueError, match="unique"):
        ray.wait([ref, ref])
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=2)
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=0)
    with pytest.raises(TypeError, match="got list containing"):
        ray.wait([ref, 1])
    with pytest.raises(TypeError):
        ray.wait([ref], timeout="1")


def test_wait_on_refs_all_ready_keeps_their_order(ray):
    # The all-ready case skips the store's wait (api.wait's one-pass scan): the split must
    # still be the first num_returns refs as given, whatever the timeout and fetch_local.
    refs = [ray.put(i) for i in range(5)][::-1]
    assert ray.wait(refs, num_returns=5) == (refs, [])
    assert ray.wait(refs, num_returns=2, timeout=0) == (refs[:2], refs[2:])
    assert ray.wait(refs, num_returns=1, fetch_local=False) == (refs[:1], refs[1:])
    assert ray.wait(list(refs), num_returns=3, timeout=None) == (refs[:3], refs[3:])
    assert ray.wait(tuple(refs), num_returns=4) == (refs[:4], refs[4:])


def test_runtime_context(ray):
    ctx = ray.get_runtime_context()
    assert len(ctx.get_job_id()) == 8
    assert ctx.get_node_id() == ray.nodes()[0]["NodeID"]
    assert ctx.get_task_id() is None

    @ray.remote
    def inside():
        c = ray.get_runtime_context()
        return c.get_task_id(), c.get_node_id(), c.get_worker_id(), c.get_job_id()

    task_id, node_id, worker_id, job_id = ray.get(inside.remote())
    assert len(task_id) == 48 and node_id == ctx.get_node_id() and len(worker_id) == 56


def test_nodes_and_resources(ray):
    nodes = ray.nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert list(node) == SURFACE["live"]["nodes_keys"]
    for key, type_name in SURFACE["live"]["nodes_value_types"].items():
        assert type(node[key]).__name__ == type_name, key
    assert node["Alive"] and node["alive"]
    assert node["Resources"]["CPU"] == 2.0
    total = ray.cluster_resources()
    assert total["CPU"] == 2.0 and "object_store_memory" in total and "memory" in total
    assert any(k.startswith("node:") for k in total)
    deadline = time.monotonic() + 5
    while ray.available_resources().get("CPU") != 2.0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources()["CPU"] == 2.0


def test_worker_output_reaches_driver(ray, capfd):
    @ray.remote
    def speak(word):
        print("said", word)
        print("complaint", file=sys.stderr)
        return os.getpid()

    with worker_output() as output:
        pid = ray.get(speak.remote("hello"))
        output.wait_for("said hello", "complaint")
    captured = capfd.readouterr()
    out, err = captured.out, captured.err
    assert f"(speak pid={pid}) said hello" in out
    assert f"(speak pid={pid}) complaint" in err


def test_method_options_are_checked(ray):
    @ray.remote
    class A:
        @ray.method(retry_exceptions=False, enable_task_events=False)
        def f(self):
            return 1

    a = A.remote()
    with pytest.raises(TypeError, match="_generator_backpressure_num_objects"):
        a.f.options(_generator_backpressure_num_objects="2")
    assert ray.get(a.f.options(enable_task_events=False).remote(), timeout=30) == 1
