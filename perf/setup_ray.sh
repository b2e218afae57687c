#!/usr/bin/env bash
# Create a separate virtualenv holding real Ray, for surface extraction and
# performance comparison.  Ray is NEVER installed into the project's own
# environment: this venv lives outside the repo.
#
#   RAY_VENV     venv location        (default: $HOME/.zray-perf/ray-venv)
#   RAY_VERSION  Ray version to pin   (default: 2.60.0)
#   PYTHON       interpreter to build the venv with (default: python3)
#
# Idempotent: if the venv already has the requested Ray version, nothing is
# installed.  The last line printed is the venv's python path.
set -euo pipefail

RAY_VENV="${RAY_VENV:-$HOME/.zray-perf/ray-venv}"
RAY_VERSION="${RAY_VERSION:-2.60.0}"
PYTHON="${PYTHON:-python3}"

# Refuse to put the venv inside the project tree.
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$(dirname "$RAY_VENV")"
venv_abs="$(cd "$(dirname "$RAY_VENV")" && pwd)/$(basename "$RAY_VENV")"
case "$venv_abs/" in
  "$repo_root"/*) echo "setup_ray.sh: RAY_VENV must be outside the project ($repo_root)" >&2; exit 2 ;;
esac

if [ ! -x "$venv_abs/bin/python" ]; then
  echo "Creating virtualenv at $venv_abs" >&2
  "$PYTHON" -m venv "$venv_abs"
fi
VPY="$venv_abs/bin/python"

installed="$("$VPY" - <<'PY' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("ray"))
except m.PackageNotFoundError:
    pass
PY
)"
# grpcio: Ray's memory_summary (store use in perf/bench_leak_loop.py) needs it.
has_deps="$("$VPY" -c 'import numpy, grpc' >/dev/null 2>&1 && echo yes || echo no)"

if [ "$installed" = "$RAY_VERSION" ] && [ "$has_deps" = yes ]; then
  echo "ray==$RAY_VERSION already installed in $venv_abs; skipping" >&2
else
  echo "Installing ray==$RAY_VERSION, numpy and grpcio into $venv_abs" >&2
  "$VPY" -m pip install --quiet --upgrade pip >&2
  "$VPY" -m pip install --quiet "ray==$RAY_VERSION" numpy grpcio >&2
fi

echo "$VPY"
