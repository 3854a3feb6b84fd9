#!/usr/bin/env bash
# Build mmcv 2.1.0 with its compiled ops into a wheel cache, once per mmcv / torch / CUDA flavour.
#
#   build_mmcv.sh PYTHON WHEEL_ROOT               build unless cached; logs on stdout
#   build_mmcv.sh --wheel-dir PYTHON WHEEL_ROOT   print this host's cache folder, build nothing
#
# Why by hand: mmcv 2.x is a source-only package on PyPI, its setup.py imports
# pkg_resources (setuptools < 82) and hard-codes -std=c++17 while torch 2.14's
# headers require C++20. We raise that one flag in the unpacked sdist and build
# without isolation against the torch already in the venv. ~10-21 min on 2 cores (CPU ops).
#
# CPU or CUDA ops: where a CUDA toolkit (nvcc in CUDA_HOME, default /usr/local/cuda) AND a GPU
# are present, the ops are compiled for that GPU: FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST from its
# compute capability, CPATH holding the venv's nvidia/*/include (torch's CUDA wheels bring the
# cuBLAS/cuSPARSE/... headers there, not under CUDA_HOME). Otherwise CPU ops only.
# ULLAVA_MMCV_CUDA=0 forces CPU ops, =1 forces CUDA ops (without a visible GPU it needs
# TORCH_CUDA_ARCH_LIST, e.g. a build host for a GPU fleet); the default is auto.
#
# The cache is keyed: WHEEL_ROOT/mmcv2.1.0-torch2.14.1-cpu/ or .../mmcv2.1.0-torch2.14.1-cu130-sm90/,
# so a GPU host never installs a CPU-only wheel and a torch upgrade never reuses an old build.
set -euo pipefail
VERSION=2.1.0
MODE=build
if [ "${1:-}" = --wheel-dir ]; then MODE=print; shift; fi
PY=$(realpath -s "${1:?usage: build_mmcv.sh [--wheel-dir] PYTHON WHEEL_ROOT}")
ROOT=$(realpath -m "${2:?usage: build_mmcv.sh [--wheel-dir] PYTHON WHEEL_ROOT}")
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
die() { echo "[mmcv] $*" >&2; exit 1; }

# "TORCH_VERSION TORCH_CUDA GPU_ARCH" from the venv's torch ('none' where absent)
torch_facts() {
  "$PY" - <<'EOF'
import torch
cc = torch.cuda.get_device_capability(0) if torch.cuda.is_available() else None
print(torch.__version__.split('+')[0], torch.version.cuda or 'none',
      f'{cc[0]}.{cc[1]}' if cc else 'none')
EOF
}

# Sets USE_CUDA, ARCH_LIST and KEY (the cache folder's name) for this host.
flavour() {
  local torch_v torch_cuda gpu_arch sm
  read -r torch_v torch_cuda gpu_arch < <(torch_facts)
  [ -n "$torch_v" ] || die "could not import torch with $PY"
  USE_CUDA=0
  case ${ULLAVA_MMCV_CUDA:-auto} in
    0) ;;
    1) USE_CUDA=1 ;;
    auto) if [ -x "$CUDA_HOME/bin/nvcc" ] && [ "$gpu_arch" != none ]; then USE_CUDA=1; fi ;;
    *) die "ULLAVA_MMCV_CUDA must be 0, 1 or auto, got '${ULLAVA_MMCV_CUDA}'" ;;
  esac
  if [ "$USE_CUDA" = 1 ]; then
    [ -x "$CUDA_HOME/bin/nvcc" ] || die "CUDA ops asked for, but no nvcc in CUDA_HOME=$CUDA_HOME"
    [ "$torch_cuda" != none ] || die "CUDA ops asked for, but $PY has a CPU-only torch"
    ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$gpu_arch}
    [ "$ARCH_LIST" != none ] || die "CUDA ops without a visible GPU need TORCH_CUDA_ARCH_LIST (e.g. 9.0)"
    # "8.0;9.0+PTX" -> "80-90"
    sm=$(echo "$ARCH_LIST" | tr ' ;,' '\n\n\n' | sed -e 's/+PTX//' -e 's/\.//' | grep . | sort -un | paste -sd- -)
    KEY="mmcv$VERSION-torch$torch_v-cu${torch_cuda//./}-sm$sm"
  else
    KEY="mmcv$VERSION-torch$torch_v-cpu"
  fi
}

flavour
WHEELS="$ROOT/$KEY"
if [ "$MODE" = print ]; then echo "$WHEELS"; exit 0; fi
mkdir -p "$WHEELS"
# Wheels cached flat in WHEEL_ROOT by the earlier, unkeyed version of this script were all CPU
# builds against torch 2.14.1: adopt them for that flavour instead of rebuilding.
if [ "$KEY" = "mmcv$VERSION-torch2.14.1-cpu" ] && ls "$ROOT"/mmcv-$VERSION-*.whl >/dev/null 2>&1; then
  mv "$ROOT"/mmcv-$VERSION-*.whl "$WHEELS"/
  echo "[mmcv] moved the unkeyed CPU wheel into $WHEELS"
fi
if ls "$WHEELS"/mmcv-$VERSION-*.whl >/dev/null 2>&1; then
  echo "[mmcv] cached wheel found in $WHEELS"; exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --no-deps --no-build-isolation --no-binary :all: "mmcv==$VERSION" -d "$work" -q
tar -xzf "$work"/mmcv-$VERSION.tar.gz -C "$work"
src="$work/mmcv-$VERSION"
sed -i "s/-std=c++17/-std=c++20/g" "$src/setup.py"
grep -q 'c++20' "$src/setup.py" || die "could not patch the C++ standard in setup.py"
jobs=${MAX_JOBS:-$(nproc)}
if [ "$USE_CUDA" = 1 ]; then
  nvidia=$("$PY" -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)
  for inc in "$nvidia"/*/include; do [ -d "$inc" ] && CPATH="$inc${CPATH:+:$CPATH}"; done
  export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH_LIST" CUDA_HOME CPATH=${CPATH:-}
  echo "[mmcv] building mmcv $VERSION with CUDA ops for $ARCH_LIST ($KEY; ~50 min on 2 cores, $jobs jobs)"
else
  # mmcv's setup.py compiles CUDA ops whenever torch sees a GPU, whatever FORCE_CUDA says
  export FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=
  echo "[mmcv] building mmcv $VERSION with CPU ops ($KEY; about 10-20 minutes on 2 cores)"
fi
(cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=$jobs "$PY" -m pip wheel --no-deps --no-build-isolation -w "$work/out" . -q)
cp "$work"/out/mmcv-*.whl "$WHEELS"/
echo "[mmcv] wheel cached in $WHEELS"
