"""The joblib backend: ``register_ray()``, then ``with joblib.parallel_backend("ray"): ...``
runs joblib's work on a ``zray.util.multiprocessing.Pool``. Needs joblib
(``pip install zray[joblib]``)."""


def register_ray():
    """Registers the backend with joblib under the name "ray"."""
    try:
        from joblib.parallel import register_parallel_backend
    except ImportError:
        raise ImportError(
            "The ray joblib backend needs joblib: "
            "pip install joblib (or pip install 'zray[joblib]')."
        ) from None
    from zray.util.joblib.ray_backend import RayBackend

    register_parallel_backend("ray", RayBackend)


__all__ = ["register_ray"]
