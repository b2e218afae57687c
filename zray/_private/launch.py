"""Command lines for zray's own child processes (node daemon, zygote).

`python -m` would put the child's working directory first on sys.path, so a `zray/` folder
there (another checkout, a user's package) would be imported instead of the zray that started
it. Children instead bind the `zray` package to this process's copy by file location before
running their module; sys.path is left exactly as `python -c` makes it, so user modules in
the working directory stay importable for tasks.
"""
from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BOOT = """\
import importlib.util, runpy, sys
spec = importlib.util.spec_from_file_location(
    "zray", {init!r}, submodule_search_locations=[{package!r}])
module = importlib.util.module_from_spec(spec)
sys.modules["zray"] = module
spec.loader.exec_module(module)
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""


def module_command(module: str) -> list:
    """argv that runs `module` as __main__ with this process's zray package."""
    code = _BOOT.format(init=os.path.join(_PACKAGE_DIR, "__init__.py"), package=_PACKAGE_DIR,
                        module=module)
    return [sys.executable, "-c", code]
