#!/usr/bin/env bash
# The exact-resume test N times in a row (no retry; stops at the first failure) while a CPU hog
# (a NumPy matmul loop on 2 threads) keeps the cores busy: issue #11's acceptance run.
#   bash bench/repeat_resume_test.sh [N=20] [--no-hog]
# One line per run (exit code, seconds, load average) in work_dirs/repeat_resume/summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
PY=${PY:-.venv/bin/python}
OUT=work_dirs/repeat_resume
mkdir -p "$OUT"; : > "$OUT/summary.txt"
hog=
if [ "${2:-}" != "--no-hog" ]; then
  OPENBLAS_NUM_THREADS=2 "$PY" -c "
import numpy as np
a = np.random.rand(1000, 1000)
while True:
    a = (a @ a) / 1000.0" &
  hog=$!
  trap 'kill $hog 2>/dev/null' EXIT
fi
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  "$PY" -m pytest -x tests/test_engine/test_resume.py > "$OUT/run$i.log" 2>&1
  rc=$?
  echo "run $i rc=$rc $(( $(date +%s) - start ))s load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/summary.txt"
  [ $rc -ne 0 ] && { echo "failed at run $i of $N (see $OUT/run$i.log)"; exit 1; }
done
echo "$N of $N passed" | tee -a "$OUT/summary.txt"
