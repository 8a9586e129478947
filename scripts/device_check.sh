#!/usr/bin/env bash
# The GPU checks, in one run on a device machine (no internet there). Prepare here with
#   bash scripts/device_wheels.sh --check
# then run (device tool): carry [".whl"], command "bash scripts/device_check.sh", timeout_s 540.
# Every step has its own limit; together they stay at 480 s (margin for the wheel install,
# the table and a slow start). All data is generated on the device. Writes every log, the per-step JSON
# and one final table (final.txt) to $OUT (default ./device_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
PY=python3
WORK=/tmp/device_check
{ nvidia-smi; $PY -c "import numpy, torch; print(torch.__version__, numpy.__version__, torch.cuda.get_device_name(0))"; } >"$OUT/device.txt" 2>&1

run() {  # run NAME SECONDS CMD...: a step with its own time limit, its log in $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS
  timeout -k 5 "$limit" "$@" >"$OUT/$name.txt" 2>&1
  local rc=$?
  echo "   exit $rc after $((SECONDS - start)) s ($name)" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.txt"
}

# step limits: 75 + 45 + 150 + 150 + 60 = 480 s
run gpu_tests 75 $PY -m pytest -q -m gpu tests -p no:cacheprovider
run bench_eval 45 $PY scripts/bench_eval.py --volumes 10 --device cuda --repeat 2 --source synthetic \
  --root "$WORK/eval" --json "$OUT/bench_eval.json"
run bench_cs_gpu 150 $PY scripts/bench_cs_gpu.py --device cuda --root "$WORK/cs" --json "$OUT/bench_cs_gpu.json"
run bench_train 150 $PY scripts/bench_train.py --device cuda --amp --compile --preset knee --challenge singlecoil \
  --steps 40 --warmup 10 --batch-size 8 --workers 8 --data "$WORK/train" --json "$OUT/bench_train.json"
run bench_train_varnet 60 $PY scripts/bench_train.py --model varnet --device cuda --steps 20 --warmup 5 --batch-size 4 --data "$WORK/train_varnet" --json "$OUT/bench_train_varnet.json"

$PY scripts/device_table.py "$OUT" | tee "$OUT/final.txt"
