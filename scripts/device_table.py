"""One table from ``device_check.sh``'s per-step JSON files: the GPU numbers against the issue's targets.

    python scripts/device_table.py DEVICE_OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: (file, key, label, target, higher is better)
ROWS = [
    ("bench_cs_gpu.json", "in_process_s", "cs-recon knee volume, in-process (s)", 0.5, False),
    ("bench_cs_gpu.json", "whole_process_s", "cs-recon knee volume, whole process (s)", None, False),
    ("bench_cs_gpu.json", "admm_eager_s", "ADMM solve alone, eager (s)", None, False),
    ("bench_cs_gpu.json", "admm_compiled_s", "ADMM solve alone, torch.compile (s)", None, False),
    ("bench_cs_gpu.json", "ssim_cs", "cs-recon SSIM", None, True),
    ("bench_eval.json", "in_process_ratio", "eval vs fastmri.evaluate, in-process (x)", 20.0, True),
    ("bench_eval.json", "subprocess_ratio", "eval vs fastmri.evaluate, subprocess (x)", None, True),
    ("bench_train.json", "train_ratio", "U-Net training vs fastmri.models.Unet (x)", 1.5, True),
    ("bench_train.json", "infer_ratio", "U-Net inference vs fastmri.models.Unet (x)", None, True),
    ("bench_train.json", "ours_train_slices_s", "U-Net training, ours (slices/s)", None, True),
    ("bench_train.json", "fastmri_train_slices_s", "U-Net training, fastmri.models.Unet (slices/s)", None, True),
    ("bench_train_varnet.json", "ours_train_slices_s", "VarNet training, ours (slices/s)", None, True),
    ("bench_train_varnet.json", "fastmri_train_slices_s", "VarNet training, fastmri.models.VarNet (slices/s)", None, True),
    ("bench_train_varnet.json", "train_ratio", "VarNet training vs fastmri.models.VarNet (x)", None, True),
]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "device_out")
    print(f"| measure | value | target | met |\n|---|---|---|---|")
    for name, key, label, target, higher in ROWS:
        path = out / name
        value = json.loads(path.read_text()).get(key) if path.exists() else None
        if value is None:
            print(f"| {label} | missing ({name}) | {target or '-'} | - |")
            continue
        met = "-" if target is None else ("yes" if (value >= target if higher else value <= target) else "NO")
        print(f"| {label} | {value:.3f} | {target if target is not None else '-'} | {met} |")
    note = out / "bench_cs_gpu.json"
    if note.exists():
        print(f"\ntorch.compile of the ADMM iteration: {json.loads(note.read_text()).get('compiled_note')}")


if __name__ == "__main__":
    main()
