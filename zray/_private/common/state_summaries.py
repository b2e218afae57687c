"""Ray's summaries of the state API (`ray summary tasks|actors|objects`), computed where the
rows are: the head summarizes its tasks and actors; each node summarizes the objects its
processes hold into a part the asker merges (sets of pids and IPs sent as lists, so a
process or node counted by two parts counts once).
"""

from __future__ import annotations

from typing import Any


def task_summary(tasks: list) -> dict[str, Any]:
    """Ray's TaskSummaries.to_summary_by_func_name."""
    summary: dict = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_CREATION_TASK": 0, "ACTOR_TASK": 0}
    for task in tasks:
        key = task.get("name") or task.get("func_or_class_name")
        entry = summary.setdefault(
            key, {"func_or_class_name": key, "type": task["type"], "state_counts": {}}
        )
        counts = entry["state_counts"]
        counts[task["state"]] = counts.get(task["state"], 0) + 1
        if task["type"] in totals:
            totals[task["type"]] += 1
    return {
        "summary": summary,
        "total_tasks": totals["NORMAL_TASK"],
        "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
        "summary_by": "func_name",
    }


def actor_summary(actors: list) -> dict[str, Any]:
    """Ray's ActorSummaries.to_summary."""
    summary: dict = {}
    for actor in actors:
        entry = summary.setdefault(
            actor["class_name"], {"class_name": actor["class_name"], "state_counts": {}}
        )
        counts = entry["state_counts"]
        counts[actor["state"]] = counts.get(actor["state"], 0) + 1
    return {"summary": summary, "total_actors": len(actors), "summary_by": "class"}


_COUNTED = (
    ("task_state_counts", "task_status"),
    ("task_attempt_number_counts", "attempt_number"),
    ("ref_type_counts", "reference_type"),
)


def _empty_entry() -> dict:
    """One call site's running totals, in a part and in the merged summary alike."""
    return {
        "total_objects": 0,
        "sizes": 0,
        "task_state_counts": {},
        "task_attempt_number_counts": {},
        "ref_type_counts": {},
        "pids": set(),
        "ips": set(),
    }


def object_summary_part(objects: list) -> dict[str, Any]:
    """One node's share of Ray's ObjectSummaries: per call site, the counts and the pids and
    IPs seen (as lists), and how many rows it summed (`rows`)."""
    part: dict = {}
    for obj in objects:
        entry = part.get(obj["call_site"]) or part.setdefault(obj["call_site"], _empty_entry())
        for counts_key, field in _COUNTED:
            counts = entry[counts_key]
            value = str(obj[field]) if field == "attempt_number" else obj[field]
            counts[value] = counts.get(value, 0) + 1
        entry["total_objects"] += 1
        if obj["object_size"] != -1:
            entry["sizes"] += obj["object_size"]
        entry["pids"].add(obj["pid"])
        entry["ips"].add(obj["ip"])
    for entry in part.values():
        entry["pids"] = sorted(entry["pids"])
        entry["ips"] = sorted(entry["ips"])
    return {"rows": len(objects), "by_call_site": part}


def object_summary(parts: list) -> dict[str, Any]:
    """Ray's ObjectSummaries.to_summary from the parts of every node that answered. Sizes add
    up in bytes: each MB value is bytes / 2**20, exact in a float, so the sum is what adding
    the rows' MB one by one gives."""
    merged: dict = {}
    for part in parts:
        for key, entry in part["by_call_site"].items():
            into = merged.get(key) or merged.setdefault(key, _empty_entry())
            into["total_objects"] += entry["total_objects"]
            into["sizes"] += entry["sizes"]
            for counts_key, _field in _COUNTED:
                counts = into[counts_key]
                for value, n in entry[counts_key].items():
                    counts[value] = counts.get(value, 0) + n
            into["pids"].update(entry["pids"])
            into["ips"].update(entry["ips"])
    summary = {
        key: {
            "total_objects": entry["total_objects"],
            "total_size_mb": entry["sizes"] / 1024**2,
            "total_num_workers": len(entry["pids"]),
            "total_num_nodes": len(entry["ips"]),
            "task_state_counts": entry["task_state_counts"],
            "task_attempt_number_counts": entry["task_attempt_number_counts"],
            "ref_type_counts": entry["ref_type_counts"],
        }
        for key, entry in merged.items()
    }
    return {
        "summary": summary,
        "total_objects": sum(entry["total_objects"] for entry in merged.values()),
        "total_size_mb": sum(entry["sizes"] for entry in merged.values()) / 1024**2,
        "callsite_enabled": all(key != "disabled" for key in merged),
        "summary_by": "callsite",
    }
