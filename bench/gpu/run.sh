#!/usr/bin/env bash
# issue #15's GPU suite in one command (<= 8 minutes on one H200); see bench/gpu/suite.py.
#
#   bench/gpu/run.sh                 # on a CUDA machine: summary.json + summary.md in $OUT
#   bench/gpu/run.sh --dry-run       # CPU, tiny sizes: what `make test` runs
#   GPUS=8 bench/gpu/run.sh          # ZeRO-2 over 8 GPUs of one node (torchrun)
#
# Results go to --out, else $OUT (the device machine's return folder), else work_dirs/gpu_suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
OUT_DIR=${OUT:-$ROOT/work_dirs/gpu_suite}
cd "$ROOT"
# the allocator's expandable segments keep a 7B ZeRO-2 step from failing on fragmentation
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
if [ "${GPUS:-1}" -gt 1 ]; then
  exec "$PY" -m torch.distributed.run --nproc_per_node="$GPUS" bench/gpu/suite.py --out "$OUT_DIR" "$@"
fi
exec "$PY" bench/gpu/suite.py --out "$OUT_DIR" "$@"
