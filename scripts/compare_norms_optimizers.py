"""The lecture's comparison: {group, batch, instance, layer} norm x {adam, rmsprop, sgd+momentum}.

Each combination trains the same small U-Net on the same sample scans for the same budget
(epochs x slices, same seed, data order and masks) through ``mrirecon.train.loop.train`` and is
scored on held-out volumes as ``eval`` scores (mean SSIM over volumes, best epoch).
Learning rates per optimiser default to values that work for each (one lr does not fit all);
``--lr`` sets one for all.

    python scripts/compare_norms_optimizers.py --epochs 3 --chans 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sample_sets import sample_sets  # noqa: E402

from mrirecon.train.config import resolve_config  # noqa: E402
from mrirecon.train.loop import train  # noqa: E402

NORMS = ("group", "batch", "instance", "layer")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
DEFAULT_LR = {"adam": 3e-3, "rmsprop": 1e-3, "sgd": 3e-2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="Folder with train/ and val/ (default: generate sample scans).")
    parser.add_argument("--challenge", default="singlecoil", choices=["singlecoil", "multicoil"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--chans", type=int, default=8)
    parser.add_argument("--pools", type=int, default=3)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--lr", type=float, help="One learning rate for all optimisers.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--residual", action="store_true", help="Residual U-Net (learns the correction of the input).")
    parser.add_argument("--norms", default=",".join(NORMS))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    args = parser.parse_args()

    data = args.data or Path(tempfile.mkdtemp(prefix="compare_norms_"))
    if args.data is None:
        sample_sets(data, args.challenge, train_volumes=4, val_volumes=2, slices=8)
    runs_root = Path(tempfile.mkdtemp(prefix="compare_runs_"))
    norms, optimizers = args.norms.split(","), args.optimizers.split(",")
    results: dict[tuple[str, str], tuple[float, float]] = {}
    zero_filled = None
    console = Console(stderr=True)
    for norm in norms:
        for opt in optimizers:
            lr = args.lr or DEFAULT_LR[opt]
            config = resolve_config(None, {
                "train_dir": str(data / "train"), "val_dir": str(data / "val"), "run_dir": str(runs_root / f"{norm}_{opt}"),
                "chans": args.chans, "pools": args.pools, "groups": args.groups, "norm": norm, "optimizer": opt,
                "lr": lr, "epochs": args.epochs, "batch_size": args.batch_size, "schedule": "cosine",
                "device": args.device, "seed": 0, "residual": args.residual,
            })
            start = time.perf_counter()
            result = train(config, quiet=True)
            seconds = time.perf_counter() - start
            results[(norm, opt)] = (result.best_ssim or float("nan"), seconds)
            zero_filled = result.zero_filled.ssim if result.zero_filled else None
            console.print(f"{norm:>8} x {opt:<7} lr {lr:g}: best val SSIM {results[(norm, opt)][0]:.4f} ({seconds:.0f} s)")

    table = Table(title=f"Validation SSIM after {args.epochs} epochs (U-Net chans {args.chans}, pools {args.pools}, "
                        f"batch {args.batch_size}, cosine schedule{', residual' if args.residual else ''}); zero-filled {zero_filled:.4f}")
    table.add_column("norm \\ optimiser")
    for opt in optimizers:
        table.add_column(f"{opt} (lr {args.lr or DEFAULT_LR[opt]:g}{', momentum 0.9' if opt == 'sgd' else ''})")
    for norm in norms:
        table.add_row(norm, *(f"{results[(norm, opt)][0]:.4f}" for opt in optimizers))
    Console().print(table)


if __name__ == "__main__":
    main()
