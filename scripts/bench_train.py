"""Training and inference throughput of our U-Net against ``fastmri.models.Unet``, same data, same run.

Both models see the same slices (our fastMRI-style dataset and loader), the same optimiser
(Adam), learning rate, batch size and number of steps. Ours runs with the speed options
given (--amp bf16 autocast, channels_last on CUDA, --compile); fastMRI's Unet runs as fastMRI
trains it (fp32), unless --same-precision. Prints slices/s for training and inference, the
ratio, and the validation SSIM each model reached (scored like ``eval``).

    python scripts/bench_train.py --data DIR_WITH_train_AND_val --device cpu --steps 20
    python scripts/bench_train.py --device cuda --amp --compile --steps 300
    python scripts/bench_train.py --device cuda --amp --compile --preset knee --workers 8  # 320x320
    python scripts/bench_train.py --device cuda --challenge multicoil --device-transform  # our input transform on the GPU

With --device-transform our model's batches are transformed on the device (``train.device_transform``:
the workers only read k-space); fastMRI's Unet keeps the CPU transform in the workers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.nn import functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sample_sets import sample_sets  # noqa: E402

from mrirecon.mri.masks import MaskSpec  # noqa: E402
from mrirecon.train.checkpoint import build_model  # noqa: E402
from mrirecon.train.config import TrainConfig  # noqa: E402
from mrirecon.train.dataset import EpochSampler, SliceDataset, list_volumes  # noqa: E402
from mrirecon.train.device_transform import KspaceSliceDataset, collate_kspace, device_batch  # noqa: E402
from mrirecon.train.inference import autocast  # noqa: E402
from mrirecon.train.loop import model_outputs  # noqa: E402
from mrirecon.train.validate import validate  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(model, loader, device, steps: int, warmup: int, lr: float, amp: bool, channels_last: bool,
                on_device: bool = False) -> float:
    """Train ``steps`` Adam steps (after ``warmup`` untimed ones); returns training slices/s.
    ``on_device``: the loader yields ``collate_kspace`` batches, transformed by ``device_batch``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    done, seen, start = 0, 0, None
    while done < steps + warmup:
        for batch in loader:
            if done == warmup:
                sync(device)
                start, seen = time.perf_counter(), 0
            if on_device:
                batch = device_batch(batch, device)
            output, target = model_outputs(model, batch, device, "unet", amp, channels_last)  # the loop's own step
            loss = F.l1_loss(output, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            seen += output.shape[0]
            if done >= steps + warmup:
                break
    sync(device)
    return seen / (time.perf_counter() - start)


@torch.no_grad()
def infer_rate(model, shape, device, batch: int, repeats: int, amp: bool, channels_last: bool) -> float:
    model.eval()
    x = torch.randn(batch, 1, *shape, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        with autocast(device, amp):
            model(x)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        with autocast(device, amp):
            model(x)
    sync(device)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="Folder with train/ and val/ (generated sample scans where missing).")
    parser.add_argument("--challenge", default="singlecoil", choices=["singlecoil", "multicoil"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="Timed training steps per model.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--chans", type=int, default=32)
    parser.add_argument("--pools", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for our model.")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model.")
    parser.add_argument("--device-transform", action="store_true",
                        help="Our model's input transform on the device (workers only read k-space).")
    parser.add_argument("--same-precision", action="store_true", help="Give fastMRI's Unet the same amp/channels_last.")
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--infer-repeats", type=int, default=5)
    parser.add_argument("--preset", default="small", choices=["small", "knee"],
                        help="Generated sample scans: small (128x128 images) or knee (fastMRI's 320x320).")
    parser.add_argument("--json", type=Path, help="Also write the ratios here (for device_check.sh's table).")
    args = parser.parse_args()

    device = torch.device(args.device)
    data = args.data or Path(tempfile.mkdtemp(prefix="bench_train_"))
    if args.data is None or not all(any((data / name).glob("*.h5")) for name in ("train", "val")):
        sample_sets(data, args.challenge, train_volumes=4, val_volumes=2, slices=8, preset=args.preset,
                    device="cuda" if device.type == "cuda" else "cpu")
    train_dir, val_dir = data / "train", data / "val"
    spec = MaskSpec("random", 4, 0.08)
    dataset = SliceDataset(list_volumes(train_dir), spec, train=True, seed=0)
    image_shape = tuple(dataset[0]["image"].shape)
    channels_last = device.type == "cuda"

    from fastmri.models import Unet as FastmriUnet

    runs = []
    for name in ("mrirecon Unet (GroupNorm)", "fastmri.models.Unet"):
        torch.manual_seed(0)
        ours = name.startswith("mrirecon")
        if ours:
            model = build_model(TrainConfig(chans=args.chans, pools=args.pools))
        else:
            model = FastmriUnet(1, 1, chans=args.chans, num_pool_layers=args.pools)
        amp = args.amp if (ours or args.same_precision) else False
        cl = channels_last if (ours or args.same_precision) else False
        model = model.to(device)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if (args.compile and ours) else model
        sampler = EpochSampler(len(dataset), seed=0)
        on_device = ours and args.device_transform
        source = KspaceSliceDataset(dataset.files, spec, train=True, seed=0) if on_device else dataset
        loader = DataLoader(source, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                            pin_memory=device.type == "cuda", persistent_workers=args.workers > 0,
                            collate_fn=collate_kspace if on_device else None)
        train_rate = train_steps(forward, loader, device, args.steps, args.warmup, args.lr, amp, cl, on_device)
        infer = infer_rate(forward, image_shape, device, args.infer_batch, args.infer_repeats, amp, cl)
        val = validate(model, list_volumes(val_dir), spec, device=device, batch_size=args.infer_batch, amp=amp,
                       channels_last=cl)
        runs.append((name + (", device transform" if on_device else ""), train_rate, infer, val.ssim, amp, cl))
    zf = validate(None, list_volumes(val_dir), spec, device=device)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    table = Table(title=f"U-Net training on {gpu}: {len(dataset)} slices {image_shape}, batch {args.batch_size}, "
                        f"{args.steps} timed steps, chans {args.chans}, pools {args.pools}, Adam lr {args.lr}")
    for col in ("model", "precision", "train slices/s", "infer slices/s", f"val SSIM after {args.steps + args.warmup} steps"):
        table.add_column(col)
    for name, tr, inf, ssim, amp, cl in runs:
        table.add_row(name, ("bf16" if amp else "fp32") + (", channels_last" if cl else ""), f"{tr:.2f}", f"{inf:.2f}",
                      f"{ssim:.4f}")
    table.add_row("zero-filled", "-", "-", "-", f"{zf.ssim:.4f}")
    Console().print(table)
    ratio_train = runs[0][1] / runs[1][1]
    ratio_infer = runs[0][2] / runs[1][2]
    print(f"ratio ours/fastmri: training {ratio_train:.2f}x, inference {ratio_infer:.2f}x; "
          f"val SSIM difference {runs[0][3] - runs[1][3]:+.4f}")
    if args.json:
        args.json.write_text(json.dumps({"train_ratio": ratio_train, "infer_ratio": ratio_infer, "image_shape": list(image_shape),
                                         "ours_train_slices_s": runs[0][1], "fastmri_train_slices_s": runs[1][1]}))
    if not math.isfinite(ratio_train):
        sys.exit(1)


if __name__ == "__main__":
    main()
