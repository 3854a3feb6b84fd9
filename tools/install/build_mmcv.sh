#!/usr/bin/env bash
# Build mmcv 2.1.0 with its compiled CPU ops into a wheel cache, once.
#
# Why by hand: mmcv 2.x is a source-only package on PyPI, its setup.py imports
# pkg_resources (setuptools < 82) and hard-codes -std=c++17 while torch 2.14's
# headers require C++20. We raise that one flag in the unpacked sdist and build
# without isolation against the torch already in the venv. ~21 min on 2 cores.
set -euo pipefail
PY=$(realpath -s "${1:?usage: build_mmcv.sh PYTHON WHEEL_DIR}")
WHEELS=$(realpath -m "${2:?usage: build_mmcv.sh PYTHON WHEEL_DIR}")
VERSION=2.1.0
mkdir -p "$WHEELS"
if ls "$WHEELS"/mmcv-$VERSION-*.whl >/dev/null 2>&1; then
  echo "[mmcv] cached wheel found in $WHEELS"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --no-deps --no-build-isolation --no-binary :all: "mmcv==$VERSION" -d "$work" -q
tar -xzf "$work"/mmcv-$VERSION.tar.gz -C "$work"
src="$work/mmcv-$VERSION"
sed -i "s/-std=c++17/-std=c++20/g" "$src/setup.py"
grep -q 'c++20' "$src/setup.py" || { echo "[mmcv] could not patch the C++ standard in setup.py" >&2; exit 1; }
echo "[mmcv] building mmcv $VERSION with CPU ops (about 20 minutes on 2 cores)"
(cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
  "$PY" -m pip wheel --no-deps --no-build-isolation -w "$work/out" . -q)
cp "$work"/out/mmcv-*.whl "$WHEELS"/
echo "[mmcv] wheel cached in $WHEELS"
