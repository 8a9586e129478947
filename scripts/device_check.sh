#!/usr/bin/env bash
# The GPU checks, in one run on a device machine (no internet there). Prepare here with
#   bash scripts/device_wheels.sh
# then run (device tool): carry [".whl"], command "bash scripts/device_check.sh", timeout ~540 s.
# Writes every log and table to $OUT (default ./device_out).
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
{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"; } >"$OUT/device.txt" 2>&1

run() {  # run NAME SECONDS CMD...: a step with its own time limit, its log in $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? ($name)" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.txt"
}

run gpu_tests 120 $PY -m pytest -q -m gpu tests -p no:cacheprovider
run bench_eval 90 $PY scripts/bench_eval.py --volumes 20 --device cuda --repeat 2 --source synthetic --root /tmp/bench_eval
run bench_cs_gpu 200 $PY scripts/bench_cs_gpu.py --device cuda --root /tmp/bench_cs_gpu
run bench_train 150 $PY scripts/bench_train.py --device cuda --amp --steps 100 --challenge multicoil --workers 4
