"""What the VarNet's input reductions save per training step, side by side in one run.

One training step (forward, SSIM-free L1 loss, backward, Adam) of the demo's tiny VarNet
(configs/varnet_demo.yaml's sizes) on the same multi-coil sample slices, four ways: as fastMRI
runs it (full readout, all coils), with ``readout_crop`` (the target's rows of the readout),
with ``virtual_coils`` and with both. Prints the median wall and CPU seconds per slice and the speed-ups over the full
input (ratios are what carry over between machines; on a loaded machine the CPU seconds of one
thread are the steadier measure).

    python scripts/bench_varnet_inputs.py                  # 8 timed steps per variant, batch 1
    python scripts/bench_varnet_inputs.py --threads 1 --steps 4 --batch-size 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.nn import functional as F

from mrirecon.mri.crop import center_crop
from mrirecon.mri.masks import MaskSpec
from mrirecon.models.varnet import VarNet
from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data
from mrirecon.train.dataset import SliceDataset, list_volumes

VARIANTS = (("full input (fastMRI)", False, 0), ("readout crop", True, 0), ("4 virtual coils", False, 4),
            ("readout crop + 4 virtual coils", True, 4))


def step_seconds(batches: list[dict[str, torch.Tensor]], readout_crop: bool, virtual_coils: int, steps: int,
                 warmup: int) -> tuple[float, float]:
    """Median wall and CPU seconds per slice of a training step (after ``warmup`` untimed steps)."""
    torch.manual_seed(0)
    model = VarNet(cascades=4, chans=8, pools=3, sens_chans=4, sens_pools=3, norm="group", groups=8,
                   readout_crop=readout_crop, virtual_coils=virtual_coils, warm_start=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, cpu_times = [], []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        target = batch["target"]
        started, cpu_started = time.perf_counter(), time.process_time()
        output = model(batch["kspace"], batch["mask"], batch["num_low"], rows=target.shape[-2])
        output = center_crop(output, tuple(target.shape[-2:]))
        scale = batch["max"].view(-1, 1, 1)
        loss = F.l1_loss(output / scale, target / scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append((time.perf_counter() - started) / target.shape[0])
            cpu_times.append((time.process_time() - cpu_started) / target.shape[0])
    return sorted(times)[len(times) // 2], sorted(cpu_times)[len(cpu_times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per variant.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        generate_sample_data(Path(tmp), SampleDataConfig(challenge="multicoil", volumes=1, seed=1), quiet=True)
        data = SliceDataset(list_volumes(tmp), MaskSpec("random", 4, 0.08, None), train=True, kind="varnet")
        items = [data[i] for i in range(len(data))]
        data.close()
    size = args.batch_size
    batches = [{k: torch.stack([it[k] for it in items[i : i + size]]) for k in items[0]}
               for i in range(0, len(items) - size + 1, size)]
    shape = tuple(batches[0]["kspace"].shape[1:])
    table = Table(title=f"VarNet training step, k-space (coils, H, W) = {shape}, batch {size}, "
                        f"{torch.get_num_threads()} thread(s)")
    for column in ("input", "wall s per slice", "speed-up (wall)", "CPU s per slice", "speed-up (CPU)"):
        table.add_column(column, justify="left" if column == "input" else "right")
    base = None
    for name, crop, coils in VARIANTS:
        wall, cpu = step_seconds(batches, crop, coils, args.steps, args.warmup)
        base = base or (wall, cpu)
        table.add_row(name, f"{wall:.3f}", f"{base[0] / wall:.2f}x", f"{cpu:.3f}", f"{base[1] / cpu:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
