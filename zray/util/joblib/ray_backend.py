"""``RayBackend``: joblib's multiprocessing backend with a ``zray.util.multiprocessing.Pool``
in place of the process pool. joblib's pool manager submits each batch of calls with
``apply_async`` and a callback, which the zray pool honours as ``multiprocessing`` does."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from joblib._parallel_backends import FallbackToBackend, MultiprocessingBackend, SequentialBackend

from zray import api
from zray.util.multiprocessing.pool import Pool

logger = logging.getLogger(__name__)


def _cluster_cpus() -> int:
    if not api.is_initialized():
        logger.info(
            "starting a local zray cluster for joblib (or joining the one "
            "ZRAY_ADDRESS/RAY_ADDRESS names)"
        )
        api.init()
    return int(api.cluster_resources().get("CPU", 0))


class RayBackend(MultiprocessingBackend):
    """Runs joblib's batches on pool actors, on any node of the cluster. ``n_jobs=-1`` means
    every CPU of the cluster, not of this machine. ``ray_remote_args`` configure the actors,
    given to ``parallel_backend("ray", ray_remote_args=...)`` or to ``Parallel(...)``."""

    def __init__(
        self,
        nesting_level: Optional[int] = None,
        inner_max_num_threads: Optional[int] = None,
        ray_remote_args: Optional[Dict[str, Any]] = None,
        **kwargs,
    ):
        self.ray_remote_args = ray_remote_args
        super().__init__(
            nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs
        )

    def effective_n_jobs(self, n_jobs):
        if n_jobs == -1:
            return _cluster_cpus()
        return super().effective_n_jobs(n_jobs)

    def configure(
        self,
        n_jobs: int = 1,
        parallel=None,
        prefer: Optional[str] = None,
        require: Optional[str] = None,
        ray_remote_args: Optional[Dict[str, Any]] = None,
        **memmappingpool_args,
    ):
        # memmappingpool_args (max_nbytes, mmap_mode, temp_folder, context, ...) tune joblib's
        # own process pool: the actors get their arguments through the object store instead.
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        remote_args = ray_remote_args if ray_remote_args is not None else self.ray_remote_args
        self._pool = Pool(n_jobs, ray_remote_args=remote_args)
        self.parallel = parallel
        return n_jobs
