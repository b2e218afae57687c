"""`zray start|stop|status|memory` parse every flag `ray` accepts, with Ray's value shapes."""

import json
import os

import pytest

from zray.scripts import cli, ray_flags

SURFACE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "ray_surface.json")
# click `count` options (`-v`, `-vv`) are recorded with an IntRange type yet take no value.
COUNTS = {("start", "--verbose"), ("stop", "--verbose")}


def sample_value(param: dict) -> str:
    kind = str(param["type"])
    if kind.startswith("Choice("):
        return kind[len("Choice(['") :].split("'")[0]
    return {"INT": "3", "FLOAT": "1.5", "BOOLEAN": "false", "BOOL": "false"}.get(kind, "x")


def ray_flags_of(verb: str) -> list:
    with open(SURFACE) as f:
        params = json.load(f)["cli"][verb]["params"]
    cases = []
    for param in params:
        for flag in param["opts"] + param["secondary_opts"]:
            if param["is_flag"] or (verb, param["opts"][-1]) in COUNTS:
                cases.append((verb, [flag]))
            else:
                cases.append((verb, [flag, sample_value(param)]))
    return cases


CASES = [case for verb in ("start", "stop", "status", "memory") for case in ray_flags_of(verb)]


def test_the_surface_lists_every_verbs_flags():
    assert len(CASES) > 60 and {"--temp-dir", "--labels", "--block"} <= {
        argv[0] for verb, argv in CASES if verb == "start"
    }


@pytest.mark.parametrize("verb,argv", CASES, ids=[" ".join(a) + f" ({v})" for v, a in CASES])
def test_ray_flag_parses(verb, argv):
    args = cli.build_parser().parse_args([verb, *argv])
    assert args.command == verb


def test_value_shapes_follow_ray():
    parse = cli.build_parser().parse_args
    assert parse(["start", "--include-dashboard", "false"]).include_dashboard is False
    assert parse(["start", "-vv"]).verbose == 2
    assert parse(["start", "--disable-usage-stats", "--head"]).head is True
    with pytest.raises(SystemExit):  # a click BOOLEAN, not any word
        parse(["start", "--include-dashboard", "maybe"])
    with pytest.raises(SystemExit):
        parse(["start", "--log-style", "fancy"])


def test_tuning_flags_warn_once_and_result_changing_flags_are_refused():
    warnings = []
    args = cli.build_parser().parse_args(
        ["start", "--head", "--dashboard-agent-grpc-port", "1", "--disable-usage-stats", "-v"]
    )
    assert ray_flags.check_flags(args, ray_flags.START_FLAGS, "start", warnings.append) is None
    assert len(warnings) == 2
    assert "--dashboard-agent-grpc-port" in warnings[0] and "--verbose" in warnings[1]


def test_dashboard_flags_are_zrays_own():
    """--dashboard-host/--dashboard-port start a real dashboard now: no warning, and they
    reach the node daemon (cli.cmd_start forwards them)."""
    warnings = []
    args = cli.build_parser().parse_args(
        ["start", "--head", "--dashboard-port", "8300", "--dashboard-host", "0.0.0.0"]
    )
    assert ray_flags.check_flags(args, ray_flags.START_FLAGS, "start", warnings.append) is None
    assert warnings == []
    assert (args.dashboard_port, args.dashboard_host) == (8300, "0.0.0.0")
    args = cli.build_parser().parse_args(["start", "--head", "--labels", "zone=a"])
    refused = ray_flags.check_flags(args, ray_flags.START_FLAGS, "start", warnings.append)
    assert refused.startswith("zray start: --labels is not supported")


@pytest.mark.parametrize(
    "flag", [["--port", "6380"], ["--redis-shard-ports", "1"], ["--include-dashboard", "false"]]
)
def test_head_only_flags_are_refused_when_joining(flag, capsys):
    assert cli.main(["start", "--address=127.0.0.1:9", *flag]) == 2
    assert f"{flag[0]} should only be specified when starting head node" in capsys.readouterr().err
