"""Packing a runtime env's local directories and files for the cluster, and unpacking them on a
node.

A working_dir or py_modules directory is zipped once on the driver, deterministically (sorted
entries, fixed timestamps), so that its name, `gcs://_ray_pkg_<hash>.zip` as in Ray, is a hash
of its content: the same tree gives the same package on every run and every driver, and a node
that unpacked it once reuses it. Packages go into the head's KV store (see "Runtime
environments" in docs/design.md for why there rather than the object store). A node unpacks
each package once into `<session>/runtime_resources/<kind>_files/<name>/`, atomically (a
temporary directory renamed into place), so concurrent setups never see half a tree.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile

from zray._private.common import runtime_env as RE
from zray._private.common.runtime_env import PACKAGE_SCHEME

KV_NAMESPACE = "runtime_env"
# Ray's GCS_STORAGE_MAX_SIZE (its gRPC message bound): the largest package it uploads.
MAX_PACKAGE_BYTES = 512 * 2**20
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _mib(size: int) -> str:
    return f"{size / 2**20:.2f}MiB"


class Excludes:
    """gitignore-style patterns, relative to the packed directory: `*` and `?` stay within a
    path component, `**` crosses them, a trailing `/` matches directories only, a pattern with
    a `/` before its end is anchored at the root, `!` re-includes."""

    def __init__(self, patterns: list):
        self.rules = [self._compile(p) for p in patterns if p.strip() and not p.startswith("#")]

    @staticmethod
    def _compile(pattern: str):
        pattern = pattern.strip()
        negate = pattern.startswith("!")
        if negate:
            pattern = pattern[1:]
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        anchored = "/" in pattern
        pattern = pattern.lstrip("/")
        body, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                body, i = body + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                body, i = body + ".*", i + 2
            elif pattern[i] == "*":
                body, i = body + "[^/]*", i + 1
            elif pattern[i] == "?":
                body, i = body + "[^/]", i + 1
            elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
                end = pattern.index("]", i + 1)
                body, i = body + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
            else:
                body, i = body + re.escape(pattern[i]), i + 1
        prefix = "" if anchored else "(?:.*/)?"
        return re.compile(f"^{prefix}{body}$"), dir_only, negate

    def excluded(self, relative: str, is_dir: bool) -> bool:
        result = False
        for regex, dir_only, negate in self.rules:
            if (is_dir or not dir_only) and regex.match(relative):
                result = not negate
        return result


def _ignore_files(root: str) -> list:
    """Patterns of the directory's own .gitignore and .rayignore, which Ray honours too."""
    patterns: list = []
    for name in (".gitignore", ".rayignore"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                patterns += [line.rstrip("\n") for line in f]
    return patterns


def zip_directory(root: str, excludes: list, include_parent: bool) -> bytes:
    """The directory as a deterministic zip; `include_parent` keeps its name as the top level
    (a py_modules package must stay importable by its name)."""
    root = os.path.abspath(root)
    rules = Excludes(_ignore_files(root) + list(excludes))
    top = os.path.basename(root.rstrip(os.sep)) if include_parent else ""
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for directory, dirnames, filenames in os.walk(root):
            relative_dir = os.path.relpath(directory, root)
            relative_dir = "" if relative_dir == "." else relative_dir.replace(os.sep, "/") + "/"
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not rules.excluded(relative_dir + d, True) and d != "__pycache__"
            )
            for name in sorted(filenames):
                relative = relative_dir + name
                path = os.path.join(directory, name)
                if rules.excluded(relative, False) or not os.path.isfile(path):
                    continue
                info = zipfile.ZipInfo(
                    os.path.join(top, relative) if top else relative, _FIXED_TIME
                )
                info.external_attr = (stat.S_IMODE(os.stat(path).st_mode) | stat.S_IFREG) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as f:
                    data = f.read()
                total += len(data)
                if total >= MAX_PACKAGE_BYTES:
                    raise ValueError(_too_large(total, root))
                archive.writestr(info, data)
    return buffer.getvalue()


def _too_large(size: int, what: str) -> str:
    return (
        f"Package size ({_mib(size)}) of {what} exceeds the maximum size of "
        f"{_mib(MAX_PACKAGE_BYTES)}. To exclude large files, add them to '.gitignore' or "
        "'.rayignore' files, or use the 'excludes' option in the runtime_env."
    )


def package_of(path: str, excludes: list, include_parent: bool) -> tuple:
    """(uri, bytes) of a local directory, .zip or .whl."""
    if os.path.isdir(path):
        data = zip_directory(path, excludes, include_parent)
        suffix = ".zip"
    else:
        size = os.path.getsize(path)
        if size >= MAX_PACKAGE_BYTES:
            raise ValueError(_too_large(size, path))
        with open(path, "rb") as f:
            data = f.read()
        suffix = ".whl" if path.endswith(".whl") else ".zip"
    digest = hashlib.sha1(data).hexdigest()[:16]
    return f"{PACKAGE_SCHEME}_ray_pkg_{digest}{suffix}", data


def local_dir(resources_dir: str, kind: str, uri: str) -> str:
    """Where a node keeps the unpacked package `uri` of `kind` (working_dir or py_modules)."""
    name = uri[len(PACKAGE_SCHEME) :].rsplit(".", 1)[0]
    return os.path.join(resources_dir, f"{kind}_files", name)


def unpack(data: bytes, target: str) -> None:
    """Unzips a package into `target`, which appears whole or not at all. A package that
    another setup unpacked meanwhile is left as it is: same name, same content."""
    if os.path.isdir(target):
        return
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".unpacking-", dir=parent)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.filename.startswith("/") or ".." in info.filename.split("/"):
                    raise ValueError(f"unsafe path {info.filename!r} in package")
                archive.extract(info, staging)
                mode = info.external_attr >> 16
                if mode and not info.is_dir():
                    os.chmod(os.path.join(staging, info.filename), stat.S_IMODE(mode) | 0o600)
        try:
            os.rename(staging, target)
        except OSError:
            if not os.path.isdir(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_uploaded: set = set()  # package URIs this process has stored in the head's KV


def upload(core, env: dict) -> dict:
    """`env` with each local working_dir/py_modules path replaced by its package's URI, the
    package stored in the head's KV first (acknowledged, so no node asks for it in vain)."""
    excludes = env.get("excludes") or []

    def store(path: str, include_parent: bool) -> str:
        if path.startswith(PACKAGE_SCHEME):
            return path
        uri, data = package_of(path, excludes, include_parent)
        store_package(core, uri, data, path)
        return uri

    out = dict(env)
    if "working_dir" in env:
        out["working_dir"] = store(env["working_dir"], include_parent=False)
    if "py_modules" in env:
        out["py_modules"] = [store(m, include_parent=os.path.isdir(m)) for m in env["py_modules"]]
    return out


def store_package(core, uri: str, data: bytes, what: str) -> None:
    """Stores package `uri` in the head's KV once per process (acknowledged, so no node asks
    for it in vain). A ray:// client's packages arrive here through its session."""
    from zray._config import config
    from zray._private.wire import protocol as P

    if uri in _uploaded:
        return
    if not uri.startswith(PACKAGE_SCHEME) or len(data) >= MAX_PACKAGE_BYTES:
        raise ValueError(_too_large(len(data), what) if uri.startswith(PACKAGE_SCHEME) else uri)
    reply, _ = core.requests.call(
        core.head_address,
        P.KvPut(KV_NAMESPACE, uri.encode(), data, False),
        config.rpc_timeout_s,
    )
    if isinstance(reply, P.Error):
        raise RuntimeError(f"uploading {what} to the cluster failed: {reply.message}")
    _uploaded.add(uri)


def for_call(core, option) -> str:
    """The canonical env a task or actor created here runs in: its own `runtime_env` option
    (local paths uploaded) over the env of this process (the job's env in a driver)."""
    own = RE.parse(option)
    if own:
        own = upload(core, own)
    return RE.dumps(RE.merge(core.runtime_env, own))
