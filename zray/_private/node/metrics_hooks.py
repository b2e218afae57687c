"""The node daemon's two hooks into metrics, kept out of daemon.py: starting the endpoint when
a port is given, and taking processes' reports."""

from __future__ import annotations


def start_export(node, port: int):
    """The node's metrics endpoint (metrics_export.py), or None for port -1. Imported only when
    a port is given: prometheus-client and psutil cost the daemon's start ~20 ms."""
    if port < 0:
        return None
    from zray._private.node import metrics_export

    return metrics_export.start(node, port)


def on_metrics_report(node, identity: bytes, msg, seq: int) -> None:
    if node.metrics is not None:  # else nobody asked for metrics: drop it
        node.metrics.on_report(identity, msg.metrics, msg.tasks)
