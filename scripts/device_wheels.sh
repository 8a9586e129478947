#!/usr/bin/env bash
# Download the pure-Python wheels the GPU device machine lacks (it has torch, h5py,
# scikit-image, rich, typer, but no fastmri or runstats) into .whl/ (git-ignored), for
# scripts/device_check.sh. Run here, where PyPI is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for pkg in fastmri==0.3.0 runstats; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$pkg"
done
ls .whl
