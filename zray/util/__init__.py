"""zray.util: Ray's utility namespace (scheduling strategies for now)."""
from zray.util import scheduling_strategies

__all__ = ["scheduling_strategies"]
