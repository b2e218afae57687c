"""``zray.util.multiprocessing``: a drop-in ``multiprocessing.Pool`` whose processes are actors."""

from multiprocessing import JoinableQueue, TimeoutError

from zray.util.multiprocessing.pool import Pool

__all__ = ["JoinableQueue", "Pool", "TimeoutError"]
