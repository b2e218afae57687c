"""What a worker refuses of a pushed call (zray/_private/core/push_checks.py)."""

import pytest

from tests.direct_garbage import ACTOR_ID, OWNER, call
from zray._private.wire import protocol as P
from zray._private.core.push_checks import PushChecker

OID = b"o" * 28


def checker(actor_id=ACTOR_ID) -> PushChecker:
    c = PushChecker()
    c.actor_id = actor_id
    return c


def task(**fields) -> P.PushTask:
    values = dict(
        task_id=b"t" * 24,
        function_id=b"f" * 20,
        name="f",
        num_returns=1,
        owner_address=OWNER,
        lease_id=1,
        nbuffers=0,
        resolved=[],
        borrowed=[],
        resources={"CPU": 1.0},
        gpu_ids=[],
        placement_group="",
        generator_backpressure=-1,
        attempt=0,
    )
    values.update(fields)
    return P.PushTask(**values)


def test_well_formed_calls_and_tasks_pass():
    assert checker().problem(call(), 1) is None
    assert (
        checker().problem(
            call(
                nbuffers=2, resolved=[[OID, 1, 2, b"", 10]], borrowed=[[OID, "tcp://127.0.0.1:5"]]
            ),
            5,
        )
        is None
    )
    assert checker(None).problem(task(num_returns=P.MAX_NUM_RETURNS), 1) is None


@pytest.mark.parametrize(
    "fields",
    [
        dict(task_id=b"short"),
        dict(num_returns=-1),
        dict(num_returns=P.MAX_NUM_RETURNS + 1),
        dict(owner_address="nowhere"),
        dict(owner_address=""),
        dict(nbuffers=1),
        dict(nbuffers=-1),
        dict(resolved=[[OID, 1, 1, b""]]),
        dict(resolved=[[OID, 1, 1, b"", 0]]),
        dict(resolved=[[b"x", 1, 0, b"", 0]]),
        dict(borrowed=[[OID]]),
        dict(borrowed=[[OID, 5]]),
        dict(borrowed=[[OID, "x"]]),
        dict(borrowed=[OID]),
        dict(actor_id=b"\xbb" * 16),
    ],
)
def test_calls_a_worker_could_not_use_are_refused(fields):
    assert checker().problem(call(**fields), 1) is not None


@pytest.mark.parametrize(
    "fields",
    [
        dict(resources={"CPU": "1"}),
        dict(resources={1: 1.0}),
        dict(resources={"CPU": -1}),
        dict(gpu_ids=[-1]),
        dict(gpu_ids=["0"]),
        dict(gpu_ids=list(range(2000))),
    ],
)
def test_tasks_with_malformed_resources_or_gpus_are_refused(fields):
    assert checker(None).problem(task(**fields), 1) is not None
    assert checker(None).problem(task(resources={"CPU": 0.5, "GPU": 1}, gpu_ids=[0, 3]), 1) is None


def test_an_actors_worker_takes_only_its_own_calls_and_a_plain_worker_no_calls():
    assert "actor" in checker().problem(task(), 1)
    assert checker(None).problem(call(), 1) is not None
    assert "not a call" in checker().problem(P.Hello(OWNER), 0)


def test_callers_refuse_more_returns_than_workers_take():
    from zray._private.core import options as O

    with pytest.raises(ValueError, match="more than zray supports"):
        O._check_value("num_returns", P.MAX_NUM_RETURNS + 1)
