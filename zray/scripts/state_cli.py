"""`zray list | get | summary`: Ray's state CLI verbs and flags (`ray list --help`, Ray 2.60),
printing what `zray.util.state` returns in Ray's layouts (default/table, json, yaml)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from datetime import datetime

LIST_RESOURCES = [
    "actors",
    "jobs",
    "placement-groups",
    "nodes",
    "workers",
    "tasks",
    "objects",
    "runtime-envs",
    "cluster-events",
]
GET_RESOURCES = [
    "actors",
    "placement-groups",
    "nodes",
    "workers",
    "tasks",
    "objects",
    "cluster-events",
]
FORMATS = ["default", "json", "yaml", "table"]
# What zray's state API does not cover yet.
NOT_YET = {"runtime-envs", "cluster-events"}

_ADDRESS_HELP = (
    "The address of the head (host:port). If not provided, the cluster this "
    "machine runs or last started is used."
)
_TIMEOUT_HELP = "Timeout in seconds for the API requests. Default is 30"


def add_parsers(commands):
    listing = commands.add_parser("list", help="list the states of a given resource")
    listing.add_argument("resource", choices=LIST_RESOURCES)
    listing.add_argument("--format", default="default", choices=FORMATS)
    listing.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="key=value or key!=value; repeat to AND several (string values are case-insensitive)",
    )
    listing.add_argument(
        "--limit",
        type=int,
        default=100,
        help="Maximum number of entries to return. 100 by default.",
    )
    listing.add_argument("--detail", action="store_true", help="include the detail columns")
    listing.add_argument("--timeout", type=int, default=30, help=_TIMEOUT_HELP)
    listing.add_argument("--address", default=None, help=_ADDRESS_HELP)

    get = commands.add_parser("get", help="get the state of a given resource by id")
    get.add_argument("resource", choices=GET_RESOURCES)
    get.add_argument("id", nargs="?", default=None)
    get.add_argument("--address", default=None, help=_ADDRESS_HELP)
    get.add_argument("--timeout", type=int, default=30, help=_TIMEOUT_HELP)

    summary = commands.add_parser("summary", help="summarize the states of a given resource")
    kinds = summary.add_subparsers(dest="resource", required=True)
    for name in ("tasks", "actors", "objects"):
        kind = kinds.add_parser(name, help=f"summarize the {name} of the cluster")
        kind.add_argument("--timeout", type=int, default=30, help=_TIMEOUT_HELP)
        kind.add_argument("--address", default=None, help=_ADDRESS_HELP)


class UsageError(Exception):
    """Printed as click prints Ray's usage errors, exit status 2."""


def parse_filter(text: str) -> tuple:
    """'key=value' or 'key!=value' (the first predicate found), as Ray parses --filter."""
    match = re.search(r"!=|=", text)
    if match is None:
        raise UsageError(
            f"The format of a given filter {text} is invalid: Cannot find the "
            "predicate. Please provide key=val or key!=val format string."
        )
    key, value = text[: match.start()], text[match.end() :]
    if not key or not value:
        raise UsageError(
            f"The format of a given filter {text} is invalid: Cannot identify key "
            f"{key} or value, {value}. Please provide key=val or key!=val format "
            "string."
        )
    return key, match.group(), value


def normalize_keys(schema, resource: str, filters: list) -> list:
    """Keys match the schema's columns whatever their case (`STATE=ALIVE`); unknown ones are an
    error, as in Ray, rather than an empty result."""
    columns = schema.list_columns(detail=True)
    by_lower = {c.lower(): c for c in columns}
    out = []
    for key, predicate, value in filters:
        column = by_lower.get(key.lower())
        if column is None:
            raise UsageError(
                f"Invalid value: Invalid filter key {key!r} for resource "
                f"{resource.replace('-', '_')!r}. Available filter keys are: "
                f"{', '.join(columns)}"
            )
        out.append((column, predicate, value))
    return out


def main(args) -> int:
    from zray.util.state.exception import RayStateApiException

    try:
        if args.resource in NOT_YET:
            print(
                f"zray {args.command}: {args.resource} are not available yet (zray does not "
                "record them)",
                file=sys.stderr,
            )
            return 2
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            text = {"list": _list, "get": _get, "summary": _summary}[args.command](args)
    except (UsageError, RayStateApiException) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


def _show_warning(message, category, *_args, **_kwargs):
    print(f"{category.__name__}: {message}", file=sys.stderr)


def _list(args) -> str:
    from zray.util.state import common
    from zray.util.state.api import StateApiClient

    resource = common.StateResource(args.resource.replace("-", "_"))
    schema = common.resource_to_schema(resource)
    filters = normalize_keys(schema, args.resource, [parse_filter(f) for f in args.filter])
    fmt = args.format
    data = StateApiClient(address=args.address).list(
        resource,
        options=common.ListApiOptions(
            limit=args.limit, timeout=args.timeout, filters=filters, detail=args.detail
        ),
        raise_on_missing_output=False,
        _explain=fmt in ("default", "table"),
    )
    if args.detail and fmt == "default":
        fmt = "yaml"
    if not data:
        return "No resource in the cluster"
    return render([s.asdict() for s in data], schema, fmt, args.detail)


def _get(args) -> str:
    from zray.util.state import common
    from zray.util.state.api import StateApiClient

    if not args.id:
        raise UsageError(
            f"Invalid value: Missing argument 'ID'. Do you mean 'zray list {args.resource}'?"
        )
    resource = common.StateResource(args.resource.replace("-", "_"))
    data = StateApiClient(address=args.address).get(
        resource, args.id, common.ListApiOptions(timeout=args.timeout), _explain=True
    )
    if not data:
        return f"Resource with id={args.id} not found in the cluster."
    states = data if isinstance(data, list) else [data]
    return render([s.asdict() for s in states], common.resource_to_schema(resource), "yaml", True)


def _summary(args) -> str:
    from zray.util import state

    fn = {
        "actors": state.summarize_actors,
        "objects": state.summarize_objects,
        "tasks": state.summarize_tasks,
    }[args.resource]
    data = fn(
        address=args.address, timeout=args.timeout, raise_on_missing_output=False, _explain=True
    )
    return summary_text(data, args.resource)


# ---------------------------------------------------------------------------- layouts


def render(rows: list, schema, fmt: str, detail: bool) -> str:
    rows = [schema.humanify(row) for row in rows]
    if fmt == "json":
        return json.dumps(rows)
    if fmt == "yaml":
        return "---\n" + to_yaml(rows) + "...\n"
    columns = schema.list_columns(detail=detail)
    headers = [c.upper() for c in columns if rows and c in rows[0]]
    table = [[_cell(row.get(h.lower())) for h in headers] for row in rows]
    header = "=" * 8 + f" List: {datetime.now()} " + "=" * 8
    return (
        f"\n{header}\nStats:\n------------------------------\nTotal: {len(rows)}\n\n"
        f"Table:\n------------------------------\n{plain_table(headers, table)}\n"
    )


def _cell(value) -> str:
    if isinstance(value, dict):
        return to_yaml(value).rstrip("\n")
    return "" if value is None else str(value)


def plain_table(headers: list, rows: list) -> str:
    """tabulate's "plain" layout with a row index, as Ray prints tables."""
    lines = [[""] + headers] + [[str(i)] + row for i, row in enumerate(rows)]
    split = [[cell.split("\n") for cell in line] for line in lines]
    widths = [max(len(part) for line in split for part in line[i]) for i in range(len(lines[0]))]
    out = []
    for line in split:
        height = max(len(cell) for cell in line)
        for k in range(height):
            parts = [(cell[k] if k < len(cell) else "").ljust(w) for cell, w in zip(line, widths)]
            out.append("  ".join(parts).rstrip())
    return "\n".join(out)


_PLAIN = re.compile(r"^[A-Za-z_./][A-Za-z0-9_./ -]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def _scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED and not text.endswith(" "):
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value, indent: int = 0) -> str:
    """Block YAML of dicts, lists and scalars, keys in their order (Ray's sort_keys=False)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{_scalar(key)}:\n{to_yaml(item, indent + 4)}")
            else:
                out.append(f"{pad}{_scalar(key)}: {to_yaml(item).strip()}\n")
        return "".join(out)
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = []
        for item in value:
            body = to_yaml(item, indent + 4)
            out.append(f"{pad}-   {body.lstrip()}" if body.strip() else f"{pad}-\n")
        return "".join(out)
    return pad + _scalar(value) + "\n"


def summary_text(data: dict, resource: str) -> str:
    if not data:
        return "No resource in the cluster"
    cluster = dict(data["cluster"])
    summaries = cluster.pop("summary")
    summary_by = cluster.pop("summary_by")
    stats = to_yaml(cluster)
    header = "=" * 8 + f" {resource.capitalize()} Summary: {datetime.now()} " + "=" * 8
    if resource == "objects":
        tables = []
        for callsite, summary in summaries.items():
            headers = sorted(k.upper() for k in summary)
            tables.append(
                callsite.replace("|", "\n|")
                + "\n"
                + plain_table(headers, [[_cell(summary[h.lower()]) for h in headers]])
            )
        body = "\n\n\n\n".join(tables)
        return (
            f"\n{header}\nStats:\n------------------------------------\n{stats}\n"
            f"Table (group by {summary_by})\n------------------------------------\n{body}\n"
        )
    headers: list = []
    table = []
    for summary in summaries.values():
        headers = sorted(k.upper() for k in summary)
        table.append([_cell(summary[h.lower()]) for h in headers])
    return (
        f"\n{header}\nStats:\n------------------------------------\n{stats}\n"
        f"Table (group by {summary_by}):\n------------------------------------\n"
        f"{plain_table(headers, table)}\n"
    )


class _Version(argparse.Action):
    """`zray --version`, as `ray --version` prints it; zray is imported only when asked."""

    def __call__(self, parser, namespace, values, option_string=None):
        import zray

        print(f"zray, version {zray.__version__}")
        parser.exit()


def add_version_flag(parser: argparse.ArgumentParser):
    parser.add_argument("--version", action=_Version, nargs=0, help="show zray's version")
