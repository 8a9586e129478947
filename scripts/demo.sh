#!/usr/bin/env bash
# The main job on the built-in sample data: generate scans, undersample 4x, reconstruct by
# zero filling, compressed sensing (TV) and a briefly trained E2E-VarNet, score all three, draw
# a figure. Run through `make demo` (which creates .venv first). Outputs land in demo/.
# The VarNet (configs/varnet_demo.yaml) trains for 32 short epochs on the CPU; the quality gate
# (tests/test_train_quality.py) asserts the ordering the table shows: VarNet > CS > zero-filled.
#
# Three disjoint sets of sample scans: the network trains on train/, picks best.pt on val/, and
# the table scores test/, which no model chose anything on.
set -euo pipefail
cd "$(dirname "$0")/.."
M="${MRIRECON:-.venv/bin/mrirecon}"
D="${DEMO_DIR:-demo}"
rm -rf "$D"

echo "== 1. sample scans (multi-coil, fastMRI format): train, validation and test sets"
$M sample-data "$D/train" --volumes 6 --seed 1 --quiet
$M sample-data "$D/val" --volumes 1 --seed 2 --quiet
$M sample-data "$D/test" --volumes 2 --seed 3 --quiet

echo "== 2. undersample the test scans 4x (fastMRI random mask, 8% centre)"
$M subsample "$D/test" -o "$D/test_4x" --mask random --accel 4 --quiet

echo "== 3. reconstruct: zero-filled, compressed sensing (TV), E2E-VarNet trained on train/"
$M zf-recon "$D/test_4x" -o "$D/recon/zero-filled" --quiet
$M cs-recon "$D/test_4x" -o "$D/recon/cs-tv" --quiet
$M train --train "$D/train" --val "$D/val" --config configs/varnet_demo.yaml -o "$D/varnet_run" --quiet
$M unet-recon "$D/test_4x" --checkpoint "$D/varnet_run/best.pt" -o "$D/recon/varnet" --quiet

echo "== 4. score the held-out test scans against their fully sampled targets (fastMRI's metrics)"
$M compare --target "$D/test" \
  --pred "zero-filled=$D/recon/zero-filled" --pred "cs-tv=$D/recon/cs-tv" --pred "varnet=$D/recon/varnet" \
  --png "$D/comparison.png" --json "$D/comparison.json"
