"""Training and inference throughput of our U-Net against ``fastmri.models.Unet`` (or, with
``--model varnet``, our E2E-VarNet against ``fastmri.models.VarNet``), same data, same run.

Both models see the same slices (our fastMRI-style dataset and loader), the same optimiser
(Adam), learning rate, batch size and number of steps. Ours runs with the speed options
given (--amp bf16 autocast, channels_last on CUDA, --compile); fastMRI's Unet runs as fastMRI
trains it (fp32), unless --same-precision. Prints slices/s for training and inference, the
ratio, and the validation SSIM each model reached (scored like ``eval``).

    python scripts/bench_train.py --data DIR_WITH_train_AND_val --device cpu --steps 20
    python scripts/bench_train.py --device cuda --amp --compile --steps 300
    python scripts/bench_train.py --device cuda --amp --compile --preset knee --workers 8  # 320x320
    python scripts/bench_train.py --device cuda --challenge multicoil --device-transform  # our input transform on the GPU

With --model varnet both VarNets train on multi-coil sample scans from the same batches (masked
k-space, mask; fastMRI's as real-view tensors, as it takes them); ours with GroupNorm, fastMRI's
with InstanceNorm, as each is built. Validation SSIM of fastMRI's VarNet is scored by loading its
trained weights into our VarNet with instance norm (equal outputs to 1e-5, tests/test_varnet_model.py).

    python scripts/bench_train.py --model varnet --device cpu --steps 2 --warmup 1 --cascades 2 --chans 4 --pools 2

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
from typing import Callable

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
                on_device: bool = False, kind: str = "unet") -> float:
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
            output, target = model_outputs(model, batch, device, kind, amp, channels_last)  # the loop's own step
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


class FastmriVarNetInput(torch.nn.Module):
    """``fastmri.models.VarNet`` called as ours is: complex ``(B, C, H, W)`` k-space and a boolean
    ``(B, 1, 1, W)`` mask, turned into the real-view tensors fastMRI takes (its centre width found
    from the mask, as fastMRI does when it is not given)."""

    def __init__(self, varnet: torch.nn.Module):
        super().__init__()
        self.varnet = varnet

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor, num_low: torch.Tensor | None = None,
                rows: int | None = None) -> torch.Tensor:
        # ``rows`` (our readout crop) has no fastMRI counterpart: it always runs on the full readout.
        return self.varnet(torch.view_as_real(kspace), mask.unsqueeze(-1).bool(), None)


@torch.no_grad()
def varnet_infer_rate(model, batch: dict, device, repeats: int, amp: bool) -> float:
    """Slices/s of a VarNet's forward pass on one collated batch of its inputs."""
    model.eval()
    inputs = (batch["kspace"].to(device), batch["mask"].to(device), batch["num_low"].to(device))
    for _ in range(2):
        with autocast(device, amp):
            model(*inputs)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        with autocast(device, amp):
            model(*inputs)
    sync(device)
    return inputs[0].shape[0] * repeats / (time.perf_counter() - start)


def varnet_models(args: argparse.Namespace) -> list[tuple[str, torch.nn.Module, Callable[[], torch.nn.Module]]]:
    """(name, model to train, the model to validate once trained) for our VarNet and fastMRI's,
    same sizes, same seed; fastMRI's is validated as our instance-norm VarNet with its weights."""
    from fastmri.models import VarNet as FastmriVarNet

    from mrirecon.models.varnet import VarNet, load_fastmri_varnet_weights

    sizes = {"chans": args.chans, "pools": args.pools, "sens_chans": args.sens_chans, "sens_pools": args.sens_pools}
    torch.manual_seed(0)
    ours = build_model(TrainConfig(model="varnet", cascades=args.cascades, **sizes))
    torch.manual_seed(0)
    theirs = FastmriVarNet(num_cascades=args.cascades, **sizes)

    def scored_theirs() -> torch.nn.Module:
        scorer = VarNet(cascades=args.cascades, norm="instance", **sizes)
        load_fastmri_varnet_weights(scorer, theirs.state_dict(), pools=args.pools, sens_pools=args.sens_pools)
        return scorer.to(next(theirs.parameters()).device)

    return [("mrirecon VarNet (GroupNorm)", ours, lambda: ours),
            ("fastmri.models.VarNet", FastmriVarNetInput(theirs), scored_theirs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="Folder with train/ and val/ (generated sample scans where missing).")
    parser.add_argument("--model", default="unet", choices=["unet", "varnet"],
                        help="unet: against fastmri.models.Unet; varnet: against fastmri.models.VarNet (multi-coil).")
    parser.add_argument("--challenge", default=None, choices=["singlecoil", "multicoil"],
                        help="Sample scans (default: singlecoil for the U-Net, multicoil for the VarNet).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="Timed training steps per model.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--chans", type=int, default=None, help="Default 32 (U-Net), 18 (VarNet cascades, fastMRI's).")
    parser.add_argument("--pools", type=int, default=4)
    parser.add_argument("--cascades", type=int, default=12, help="VarNet cascades (fastMRI's default 12).")
    parser.add_argument("--sens-chans", type=int, default=8, help="VarNet sensitivity U-Net channels.")
    parser.add_argument("--sens-pools", type=int, default=4, help="VarNet sensitivity U-Net pools.")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for our model.")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model.")
    parser.add_argument("--device-transform", action="store_true",
                        help="Our U-Net's input transform on the device (workers only read k-space).")
    parser.add_argument("--same-precision", action="store_true", help="Give fastMRI's model the same amp/channels_last.")
    parser.add_argument("--infer-batch", type=int, default=8)
    parser.add_argument("--infer-repeats", type=int, default=5)
    parser.add_argument("--preset", default="small", choices=["small", "knee"],
                        help="Generated sample scans: small (128x128 images) or knee (fastMRI's 320x320).")
    parser.add_argument("--json", type=Path, help="Also write the ratios here (for device_check.sh's table).")
    args = parser.parse_args()
    varnet = args.model == "varnet"
    args.chans = args.chans or (18 if varnet else 32)
    challenge = args.challenge or ("multicoil" if varnet else "singlecoil")
    if varnet and (challenge != "multicoil" or args.device_transform):
        parser.error("--model varnet trains on multi-coil k-space (--challenge multicoil, no --device-transform)")

    device = torch.device(args.device)
    data = args.data or Path(tempfile.mkdtemp(prefix="bench_train_"))
    if args.data is None or not all(any((data / name).glob("*.h5")) for name in ("train", "val")):
        sample_sets(data, challenge, train_volumes=4, val_volumes=2, slices=8, preset=args.preset,
                    device="cuda" if device.type == "cuda" else "cpu")
    train_dir, val_dir = data / "train", data / "val"
    spec = MaskSpec("random", 4, 0.08)
    dataset = SliceDataset(list_volumes(train_dir), spec, train=True, seed=0, kind=args.model)
    image_shape = tuple(dataset[0]["target" if varnet else "image"].shape)
    channels_last = device.type == "cuda" and not varnet  # the VarNet's U-Nets see small per-cascade images

    if varnet:
        models = varnet_models(args)
    else:
        from fastmri.models import Unet as FastmriUnet

        torch.manual_seed(0)
        ours = build_model(TrainConfig(chans=args.chans, pools=args.pools))
        torch.manual_seed(0)
        theirs = FastmriUnet(1, 1, chans=args.chans, num_pool_layers=args.pools)
        models = [("mrirecon Unet (GroupNorm)", ours, lambda: ours), ("fastmri.models.Unet", theirs, lambda: theirs)]
    runs = []
    for name, model, scored in models:
        torch.manual_seed(0)
        is_ours = name.startswith("mrirecon")
        amp = args.amp if (is_ours or args.same_precision) else False
        cl = channels_last if (is_ours or args.same_precision) else False
        model = model.to(device)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        forward = torch.compile(model) if (args.compile and is_ours) else model
        sampler = EpochSampler(len(dataset), seed=0)
        on_device = is_ours and args.device_transform
        source = KspaceSliceDataset(dataset.files, spec, train=True, seed=0) if on_device else dataset
        loader = DataLoader(source, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                            pin_memory=device.type == "cuda", persistent_workers=args.workers > 0,
                            collate_fn=collate_kspace if on_device else None)
        train_rate = train_steps(forward, loader, device, args.steps, args.warmup, args.lr, amp, cl, on_device,
                                 kind=args.model)
        if varnet:
            batch = next(iter(DataLoader(dataset, batch_size=args.infer_batch)))
            infer = varnet_infer_rate(forward, batch, device, args.infer_repeats, amp)
        else:
            infer = infer_rate(forward, image_shape, device, args.infer_batch, args.infer_repeats, amp, cl)
        val = validate(scored(), list_volumes(val_dir), spec, device=device, batch_size=args.infer_batch, amp=amp,
                       channels_last=cl)
        runs.append((name + (", device transform" if on_device else ""), train_rate, infer, val.ssim, amp, cl))
    zf = validate(None, list_volumes(val_dir), spec, device=device)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    size = (f"cascades {args.cascades}, chans {args.chans}, pools {args.pools}, sens_chans {args.sens_chans}, "
            f"sens_pools {args.sens_pools}") if varnet else f"chans {args.chans}, pools {args.pools}"
    table = Table(title=f"{'VarNet' if varnet else 'U-Net'} training on {gpu}: {len(dataset)} slices {image_shape}, "
                        f"batch {args.batch_size}, {args.steps} timed steps, {size}, Adam lr {args.lr}")
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
        args.json.write_text(json.dumps({"model": args.model, "train_ratio": ratio_train, "infer_ratio": ratio_infer,
                                         "image_shape": list(image_shape), "ours_train_slices_s": runs[0][1],
                                         "fastmri_train_slices_s": runs[1][1], "ours_infer_slices_s": runs[0][2],
                                         "fastmri_infer_slices_s": runs[1][2]}))
    if not math.isfinite(ratio_train):
        sys.exit(1)


if __name__ == "__main__":
    main()
