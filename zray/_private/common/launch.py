"""Command lines for zray's own child processes (node daemon, zygote).

`python -m` would put the child's working directory first on sys.path, so a `zray/` folder
there (another checkout, a user's package) would be imported instead of the zray that started
it. Children instead bind the `zray` package to this process's copy by file location before
running their module; sys.path is left exactly as `python -c` makes it, so user modules in
the working directory stay importable for tasks.

The node daemon is on the critical path of `init()` and never runs user code, so it starts
leaner (`daemon_command`): without `site` (whose `.pth` hooks took 30 ms of a 130 ms start
here), on this process's sys.path instead, and without running `zray/__init__.py`, whose driver
API (cloudpickle, asyncio) the daemon does not use. Its modules therefore import zray's
submodules by name and never reach for `zray.<public name>`.
"""

from __future__ import annotations

import os
import signal
import sys

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_BIND = """\
import importlib.util, runpy, sys
spec = importlib.util.spec_from_file_location(
    "zray", {init!r}, submodule_search_locations=[{package!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["zray"] = module
"""
_RUN_INIT = "spec.loader.exec_module(module)\n"
_RUN = "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"


def _boot(module: str, run_init: bool, path: list | None = None) -> str:
    code = ""
    if path is not None:
        code += f"import sys\nsys.path[:] = {path!r}\n"
    code += _BIND + (_RUN_INIT if run_init else "") + _RUN
    return code.format(
        init=os.path.join(_PACKAGE_DIR, "__init__.py"), package=_PACKAGE_DIR, module=module
    )


def module_command(module: str) -> list:
    """argv that runs `module` as __main__ with this process's zray package."""
    return [sys.executable, "-c", _boot(module, run_init=True)]


def daemon_command(module: str) -> list:
    """argv for a zray-internal daemon: `module` as __main__, started lean (see above)."""
    return [sys.executable, "-S", "-c", _boot(module, run_init=False, path=list(sys.path))]


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Asks the kernel to kill this process when its parent dies (Linux prctl), so a crashed
    daemon leaves no children behind; elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
