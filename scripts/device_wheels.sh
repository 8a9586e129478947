#!/usr/bin/env bash
# The pure-Python wheels the GPU device machine lacks (it has torch, h5py, scikit-image, pandas,
# pytorch-lightning, torchmetrics, rich, typer, numpy 2.x, but no fastmri or runstats), into
# .whl/ (git-ignored), for scripts/device_check.sh. Run here, where PyPI is reachable.
#
# runstats: fastmri.evaluate needs >= 1.8. Its newest, 2.0.0, is published as an sdist only, so
# a wheel resolver for Python 3.12 falls back to 0.6.0, whose Statistics.push calls float() on
# fastMRI's (1,)-shaped SSIM and raises under numpy 2. We build 2.0.0's pure-Python wheel here
# (its setup.py needs setuptools < 72, and builds no C extension without Cython).
#
#   bash scripts/device_wheels.sh           # fetch and build the wheels
#   bash scripts/device_wheels.sh --check   # then import them in a fresh venv with numpy 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p .whl
rm -f .whl/runstats-*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "fastmri==0.3.0"
constraint=$(mktemp)
echo "setuptools<72" >"$constraint"
PIP_CONSTRAINT="$constraint" "$PY" -m pip wheel -q --no-deps --no-binary runstats -w .whl "runstats==2.0.0"
rm -f "$constraint"
unzip -l .whl/runstats-2.0.0-py3-none-any.whl | grep -q "runstats/core.py" || { echo "runstats wheel is not pure Python"; exit 1; }
ls .whl

[ "${1:-}" = "--check" ] || exit 0
# A fresh venv with only the device's kind of packages (newest numpy 2 for this Python) and the
# carried wheels; this machine's torch stands in for the device's (linked, not installed).
venv=$(mktemp -d)/venv
"$PY" -m venv "$venv"
"$venv/bin/pip" install -q "numpy>=2" scikit-image h5py pandas pyyaml requests rich typer tqdm
"$venv/bin/pip" install -q --no-index --no-deps .whl/*.whl
site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
[ -d "$site/torch" ] || { echo "no torch under $site: run with PYTHON=/path/to/a/venv/bin/python that has torch"; exit 1; }
links=$(dirname "$venv")/torch_only
mkdir -p "$links"
for name in torch torchgen functorch torchvision sympy mpmath networkx filelock jinja2 markupsafe fsspec typing_extensions.py nvidia; do
  [ -e "$site/$name" ] && ln -s "$site/$name" "$links/$name"
done
echo "$links" >"$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/device_torch.pth"
PYTHONPATH="$PWD" "$venv/bin/python" - <<'EOF'
import numpy as np
from fastmri.evaluate import METRIC_FUNCS, Metrics, ssim
from fastmri.models import Unet  # noqa: F401  (bench_train's reference)
import mrirecon.cli  # noqa: F401

rng = np.random.default_rng(0)
gt = rng.random((2, 32, 32)).astype(np.float32)
pred = gt + 0.05 * rng.standard_normal(gt.shape).astype(np.float32)
metrics = Metrics(METRIC_FUNCS)
metrics.push(gt, pred)  # fastMRI's SSIM is (1,)-shaped: runstats 0.6.0 raises here under numpy 2
assert np.shape(ssim(gt, pred)) == (1,)
means = {k: float(np.squeeze(v)) for k, v in metrics.means().items()}  # as bench_eval reads them (its repr
# formats (1,)-arrays and fails under numpy 2, so nothing here prints the Metrics object itself)
print("device wheels import and fastmri.evaluate's Metrics run under numpy", np.__version__, means)
EOF
rm -rf "$(dirname "$venv")"
