"""`zray memory`: every object in scope, who holds it and why, and where its bytes are.

Same flags as `ray memory`. Each node answers for itself (its store, and the reference tables
of its local processes), so the report needs no central bookkeeping.
"""

from __future__ import annotations

import time

UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}
REFERENCE_ORDER = (
    "LOCAL_REFERENCE",
    "PINNED_IN_MEMORY",
    "USED_BY_PENDING_TASK",
    "CAPTURED_IN_OBJECT",
    "BORROWED",
    "ESCAPED",
)
SUMMARY_COLUMNS = (
    ("Local References", "LOCAL_REFERENCE"),
    ("Pinned", "PINNED_IN_MEMORY"),
    ("Used by task", "USED_BY_PENDING_TASK"),
    ("Captured in Objects", "CAPTURED_IN_OBJECT"),
    ("Borrowed", "BORROWED"),
)


def add_parser(commands):
    memory = commands.add_parser("memory", help="print the object references held in the cluster")
    memory.add_argument("--address", default=None, help="head address (default: the local one)")
    memory.add_argument(
        "--group-by", default="NODE_ADDRESS", choices=["NODE_ADDRESS", "STACK_TRACE"]
    )
    memory.add_argument(
        "--sort-by", default="OBJECT_SIZE", choices=["PID", "OBJECT_SIZE", "REFERENCE_TYPE"]
    )
    memory.add_argument("--units", default="B", choices=list(UNITS))
    memory.add_argument("--no-format", action="store_true", help="print unaligned rows")
    memory.add_argument("--stats-only", action="store_true", help="print store stats only")
    memory.add_argument(
        "--num-entries", "--n", type=int, default=None, help="number of sorted entries per group"
    )
    return memory


def collect(address: str, timeout: float = 5.0) -> list:
    """One MemoryReport per live node of the cluster at `address`."""
    from zray._private.common import cluster_info
    from zray._private.wire import protocol as P

    creds = cluster_info.credentials_for(address)
    reports = []
    for node in cluster_info.fetch_nodes(address, creds):
        if node["alive"]:
            reports.append(
                cluster_info.request(
                    node["address"], P.GetMemoryReport(int(timeout * 1000)), creds, timeout + 5
                )
            )
    return reports


def rows_of(reports: list) -> list:
    """One dict per (process, object) reference, with where the object's copies are."""
    copies: dict = {}
    for report in reports:
        for oid, size, state, primary, pins, owner in report.objects:
            copies.setdefault(oid, []).append(
                (report.node_ip, state, primary, size, report.node_id.hex()[:12])
            )
    names = {
        address: f"{kind} pid {pid} ({report.node_ip})"
        for report in reports
        for pid, kind, address, _ in report.processes
    }
    rows = []
    for report in reports:
        for pid, kind, _, table in report.processes:
            for oid, owner, size, reasons, borrowers in table:
                where = copies.get(oid, [])
                if size < 0 and where:
                    size = where[0][3]
                rows.append(
                    {
                        "node": report.node_ip,
                        "pid": pid,
                        "kind": kind.capitalize(),
                        "object_id": oid.hex(),
                        "size": size,
                        "reasons": reasons,
                        "owner": names.get(owner) or _tcp_part(owner) or "?",
                        "borrowers": borrowers,
                        "copies": ", ".join(
                            f"{ip}:{state}{'' if primary else '(copy)'}"
                            for ip, state, primary, _, _ in where
                        )
                        or "inline",
                    }
                )
    return rows


def cmd_memory(args) -> int:
    import sys

    from zray._private.common import cluster_info

    from zray._private.wire import security

    try:
        address = cluster_info.resolve_address(args.address)
        reports = collect(address)
    except (cluster_info.ClusterNotFound, security.AuthenticationError) as exc:
        print(f"zray memory: {exc}", file=sys.stderr)
        return 1
    print(render(reports, args))
    return 0


def render(reports: list, args) -> str:
    unit = UNITS[args.units]
    out = [f"======== Object references status: {time.strftime('%Y-%m-%d %H:%M:%S')} ========"]
    if not args.stats_only:
        rows = rows_of(reports)
        out += (
            _by_node(rows, args, unit)
            if args.group_by == "NODE_ADDRESS"
            else _table("Object references (call sites are not recorded)", rows, args, unit)
        )
    out.append("--- Aggregate object store stats across all nodes ---")
    used = sum(r.store["used"] for r in reports)
    capacity = sum(r.store["capacity"] for r in reports) or 1
    in_memory = sum(1 for r in reports for row in r.objects if row[2] == "memory")
    spilled = [row for r in reports for row in r.objects if row[2] != "memory"]
    out.append(
        f"Plasma memory usage {used / 2**20:.0f} MiB, {in_memory} objects, "
        f"{100 * used / capacity:.2f}% full"
    )
    out.append(f"Spilled {sum(row[1] for row in spilled) / 2**20:.0f} MiB, {len(spilled)} objects")
    return "\n".join(out)


def _by_node(rows: list, args, unit: int) -> list:
    out = []
    for node in sorted({r["node"] for r in rows}):
        mine = [r for r in rows if r["node"] == node]
        out.append(f"--- Summary for node address: {node} ---")
        header = ["Mem Used by Objects"] + [name for name, _ in SUMMARY_COLUMNS]
        distinct = {r["object_id"]: r["size"] for r in mine if r["size"] > 0}
        values = [_size(sum(distinct.values()), unit, args.units)]
        for _, reason in SUMMARY_COLUMNS:
            hits = [r for r in mine if reason in r["reasons"]]
            values.append(
                f"{len(hits)}, ({_size(sum(max(r['size'], 0) for r in hits), unit, args.units)})"
            )
        out += _format([header, values], args.no_format)
        out.append("")
        out += _table(f"Object references for node address: {node}", mine, args, unit)
    return out


def _table(title: str, rows: list, args, unit: int) -> list:
    key = {
        "PID": lambda r: r["pid"],
        "OBJECT_SIZE": lambda r: -r["size"],
        "REFERENCE_TYPE": lambda r: _reason_rank(r["reasons"]),
    }[args.sort_by]
    rows = sorted(rows, key=key)
    if args.num_entries is not None:
        rows = rows[: args.num_entries]
    lines = [
        [
            "IP Address",
            "PID",
            "Type",
            "Size",
            "Reference Type",
            "Object Ref",
            "Owner",
            "Borrowers",
            "Copies",
        ]
    ]
    for r in rows:
        lines.append(
            [
                r["node"],
                str(r["pid"]),
                r["kind"],
                _size(r["size"], unit, args.units) if r["size"] >= 0 else "?",
                ",".join(r["reasons"]) or "-",
                r["object_id"],
                r["owner"],
                str(r["borrowers"]),
                r["copies"],
            ]
        )
    return [f"--- {title} ---"] + _format(lines, args.no_format) + [""]


def _reason_rank(reasons: list) -> int:
    ranks = [REFERENCE_ORDER.index(r) for r in reasons if r in REFERENCE_ORDER]
    return min(ranks) if ranks else len(REFERENCE_ORDER)


def _size(nbytes: int, unit: int, name: str) -> str:
    if name == "B":
        return f"{nbytes} B"
    return f"{nbytes / unit:.2f} {name}"


def _format(lines: list, no_format: bool) -> list:
    if no_format:
        return [" ".join(line) for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]


def _tcp_part(address: str) -> str:
    """The part of an advertised address another machine would use."""
    parts = address.split("|")
    return next((p for p in parts if p.startswith("tcp://")), parts[-1])
