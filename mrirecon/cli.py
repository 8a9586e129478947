"""The ``mrirecon`` command line: parse, validate, call a pipeline, print its summary."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer

from mrirecon.io.errors import InputError
from mrirecon.pipelines.common import BatchSummary, stderr_console

app = typer.Typer(
    name="mrirecon",
    help="Accelerated MRI reconstruction from fastMRI HDF5 files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

T = TypeVar("T")


class Challenge(str, Enum):
    singlecoil = "singlecoil"
    multicoil = "multicoil"


class MaskType(str, Enum):
    random = "random"
    equispaced = "equispaced"
    equispaced_fraction = "equispaced_fraction"
    magic = "magic"
    magic_fraction = "magic_fraction"
    poisson = "poisson"


QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bar or table.")
JsonOption = typer.Option(None, "--json", help="Write the summary as JSON to this file ('-' for stdout).")
DebugOption = typer.Option(False, "--debug", help="Show tracebacks.")
OverwriteOption = typer.Option(False, "--overwrite", help="Replace existing outputs.")


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit non-zero."""
    stderr_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(debug: bool, call: Callable[[], T]) -> T:
    """Run ``call``; bad input becomes one line and exit code 2 (a traceback only with --debug)."""
    try:
        return call()
    except (InputError, ValueError, FileNotFoundError) as exc:
        if debug:
            raise
        fail(str(exc))
    raise AssertionError("unreachable")


def write_json(text: str, target: Optional[Path]) -> None:
    if target is None:
        return
    if str(target) == "-":
        sys.stdout.write(text + "\n")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")


def finish(summary: BatchSummary, quiet: bool, json_path: Optional[Path]) -> None:
    """Print the batch summary; exit 1 if any file failed."""
    write_json(summary.to_json(), json_path)
    if not quiet:
        n_ok, n_bad = len(summary.succeeded), len(summary.failed)
        colour = "green" if n_bad == 0 else "red"
        stderr_console.print(
            f"[{colour}]{summary.command}: {n_ok} file(s) done, {n_bad} failed[/{colour}]", highlight=False
        )
    if summary.failed:
        raise typer.Exit(1)


# --- commands --------------------------------------------------------------------------
# (each command: a few lines; the work is in mrirecon.pipelines)


def mask_spec(mask: Optional[MaskType], accel: Optional[int], center_fraction: Optional[float], seed: Optional[int]):
    """A ``MaskSpec`` from the mask options, or ``None`` when no mask option was given."""
    from mrirecon.mri.masks import MaskSpec

    if mask is None and accel is None and center_fraction is None:
        return None
    spec = MaskSpec(
        mask_type=(mask or MaskType.random).value,
        acceleration=accel if accel is not None else 4,
        center_fraction=center_fraction,
        seed=seed,
    )
    try:
        spec.validate()
    except ValueError as exc:
        fail(str(exc))
    return spec


MaskOption = typer.Option(None, "--mask", help="Mask type (fastMRI's column masks, or 2D 'poisson').")
AccelOption = typer.Option(None, "--accel", help="Acceleration factor, e.g. 4 or 8.")
CenterOption = typer.Option(
    None, "--center-fraction", help="Fraction of centre columns kept (default: 0.08 at 4x, 0.04 at 8x)."
)
SeedOption = typer.Option(
    None, "--seed", help="Mask seed; the per-volume seed is (SEED, *ord(filename)), fastMRI's ord(filename) without it."
)
DeviceOption = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")


@app.command("subsample")
def subsample_command(
    inputs: List[Path] = typer.Argument(..., help="Fully sampled fastMRI files or folders of them."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (same file names)."),
    mask: MaskType = typer.Option(MaskType.random, "--mask", help="Mask type."),
    accel: int = typer.Option(4, "--accel", help="Acceleration factor."),
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Undersample k-space into test-style files (kspace, mask, acceleration, num_low_frequency).

    Example: mrirecon subsample data/val -o data/val_4x --mask random --accel 4
    """
    from mrirecon.pipelines.subsample import SubsampleConfig, subsample

    spec = mask_spec(mask, accel, center_fraction, seed)
    config = SubsampleConfig(mask=spec, overwrite=overwrite)
    summary = guarded(debug, lambda: subsample(inputs, out_dir, config, quiet=quiet, debug=debug))
    finish(summary, quiet, json_path)


@app.command("zf-recon")
def zf_recon_command(
    inputs: List[Path] = typer.Argument(..., help="fastMRI files (test-style, or fully sampled) or folders."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder for reconstruction files."),
    mask: Optional[MaskType] = MaskOption,
    accel: Optional[int] = AccelOption,
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    device: str = DeviceOption,
    batch_slices: int = typer.Option(16, "--batch-slices", help="Slices per batch on the device."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Zero-filled reconstruction: inverse FFT, RSS over coils, fastMRI's crop.

    Example: mrirecon zf-recon data/val_4x -o recon/zf
    """
    from mrirecon.pipelines.zf_recon import ZeroFilledConfig, zf_recon

    config = ZeroFilledConfig(
        mask=mask_spec(mask, accel, center_fraction, seed), device=device, batch_slices=batch_slices, overwrite=overwrite
    )
    summary = guarded(debug, lambda: zf_recon(inputs, out_dir, config, quiet=quiet, debug=debug))
    finish(summary, quiet, json_path)


@app.command("convert")
def convert_command(
    input_path: Path = typer.Argument(..., help="A .npy complex k-space array."),
    out_path: Path = typer.Option(..., "--out", "-o", help="The fastMRI .h5 file to write."),
    axes: Optional[str] = typer.Option(
        None, "--axes", help="Axis order of the array: letters S,C,H,W (default SCHW for 4D, SHW for 3D, HW for 2D)."
    ),
    readout_oversampling: int = typer.Option(
        1, "--readout-oversampling", help="Readout oversampling factor; the recon crop is H/factor (fastMRI: 2)."
    ),
    recon_size: Optional[str] = typer.Option(None, "--recon-size", help="Recon crop as HxW, e.g. 320x320."),
    undersampled: bool = typer.Option(
        False, "--undersampled", help="The array is already undersampled: write a test-style file with its mask."
    ),
    acquisition: str = typer.Option("UNKNOWN", "--acquisition", help="The 'acquisition' attribute to record."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Convert a .npy k-space array into a fastMRI file (with header and target).

    Example: mrirecon convert brain.npy -o data/brain.h5
    """
    from mrirecon.pipelines.common import BatchSummary
    from mrirecon.pipelines.convert import ConvertConfig, convert_npy

    size = None
    if recon_size is not None:
        try:
            h, w = (int(v) for v in recon_size.lower().split("x"))
            size = (h, w)
        except ValueError:
            fail(f"--recon-size must look like 320x320, got {recon_size!r}")
    config = ConvertConfig(axes, readout_oversampling, size, undersampled, acquisition, overwrite)
    result = guarded(debug, lambda: convert_npy(input_path, out_path, config))
    summary = BatchSummary("convert", [result])
    finish(summary, quiet, json_path)

@app.command("train")
def train_command(
    train_dir: Optional[Path] = typer.Option(None, "--train", help="Folder of fully sampled training files."),
    val_dir: Optional[Path] = typer.Option(None, "--val", help="Folder of fully sampled validation files."),
    run_dir: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, config, metrics, curves."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML preset, e.g. configs/unet_singlecoil.yaml."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs to train (default 10)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps in all."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Slices per step and process (default 1)."),
    norm: Optional[str] = typer.Option(None, "--norm", help="group (default), instance, batch, layer or none."),
    groups: Optional[int] = typer.Option(None, "--groups", help="GroupNorm groups (default 32; fewer if a layer has fewer channels)."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adam (default), rmsprop or sgd (with momentum)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 1e-3)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay (default 0)."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="step (default), cosine or none."),
    loss: Optional[str] = typer.Option(None, "--loss", help="l1 (default) or ssim."),
    chans: Optional[int] = typer.Option(None, "--chans", help="Channels of the first U-Net block (default 32)."),
    pools: Optional[int] = typer.Option(None, "--pools", help="Down/up-sampling levels (default 4)."),
    residual: Optional[bool] = typer.Option(None, "--residual/--no-residual", help="Add the input to the output (default off, as fastMRI)."),
    mask: Optional[MaskType] = typer.Option(None, "--mask", help="Training/validation mask type (default random)."),
    accel: Optional[int] = typer.Option(None, "--accel", help="Acceleration (default 4)."),
    center_fraction: Optional[float] = CenterOption,
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (default 0)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of initialisation, data order and training masks."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt."),
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Train a U-Net on (zero-filled, fully sampled) image pairs; torchrun runs it with DDP.

    Example: mrirecon train --train data/train --val data/val -o runs/unet --config configs/unet_singlecoil.yaml
    """
    import json

    from mrirecon.pipelines.train import run_training

    overrides = {
        "train_dir": None if train_dir is None else str(train_dir),
        "val_dir": None if val_dir is None else str(val_dir),
        "run_dir": str(run_dir),
        "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size, "norm": norm, "groups": groups,
        "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "schedule": schedule, "loss": loss,
        "chans": chans, "pools": pools, "residual": residual, "mask": None if mask is None else mask.value, "accel": accel,
        "center_fraction": center_fraction, "device": device, "amp": amp, "compile": compile_model,
        "workers": workers, "seed": seed,
    }
    result = guarded(debug, lambda: run_training(config_file, overrides, resume=resume, quiet=quiet))
    summary = {"run_dir": str(result.run_dir), "steps": result.steps, "epochs": result.epochs_done,
               "best_val_ssim": result.best_ssim, "interrupted": result.interrupted,
               "zero_filled_val_ssim": None if result.zero_filled is None else result.zero_filled.ssim,
               "history": result.history}
    write_json(json.dumps(summary, indent=2), json_path)
    if result.interrupted:
        raise typer.Exit(130)


@app.command("unet-recon")
def unet_recon_command(
    inputs: List[Path] = typer.Argument(..., help="fastMRI files (test-style, or fully sampled with --mask) or folders."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint from 'mrirecon train', e.g. RUN_DIR/best.pt."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder for reconstruction files."),
    mask: Optional[MaskType] = MaskOption,
    accel: Optional[int] = AccelOption,
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    device: str = DeviceOption,
    batch_slices: int = typer.Option(8, "--batch-slices", help="Slices per batch on the device."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Reconstruct with a trained U-Net (de-normalised to the input's scale, cropped like zf-recon).

    Example: mrirecon unet-recon data/val_4x --checkpoint runs/unet/best.pt -o recon/unet
    """
    from mrirecon.pipelines.unet_recon import UnetReconConfig, unet_recon

    config = UnetReconConfig(checkpoint=checkpoint, mask=mask_spec(mask, accel, center_fraction, seed), device=device,
                             batch_slices=batch_slices, amp=amp, overwrite=overwrite)
    summary = guarded(debug, lambda: unet_recon(inputs, out_dir, config, quiet=quiet, debug=debug))
    finish(summary, quiet, json_path)


@app.command("eval")
def eval_command(
    target_dir: Path = typer.Option(..., "--target", help="Folder of fully sampled target files (*.h5)."),
    pred_dir: Path = typer.Option(..., "--pred", help="Folder of reconstruction files of the same names."),
    challenge: Optional[Challenge] = typer.Option(
        None, "--challenge", help="Target dataset: reconstruction_esc (singlecoil) or _rss (multicoil); default from the k-space rank."
    ),
    acquisition: Optional[str] = typer.Option(None, "--acquisition", help="Only volumes of this acquisition, e.g. CORPD_FBK."),
    acceleration: Optional[float] = typer.Option(
        None, "--acceleration", help="Only volumes of this acceleration (attribute of the target, else of the prediction)."
    ),
    min_ssim: Optional[float] = typer.Option(None, "--min-ssim", help="Exit 1 if the mean SSIM is below this."),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Exit 1 if the mean PSNR is below this."),
    max_nmse: Optional[float] = typer.Option(None, "--max-nmse", help="Exit 1 if the mean NMSE is above this."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Score reconstructions as fastMRI does: NMSE, PSNR, SSIM per volume, mean ± 2 SD.

    Example: mrirecon eval --target data/val --pred recon/zf --min-ssim 0.7 --json scores.json
    """
    import json

    from rich.console import Console

    from mrirecon.pipelines.evaluate import EvalConfig, evaluate, summary_table

    config = EvalConfig(
        challenge=None if challenge is None else challenge.value, acquisition=acquisition, acceleration=acceleration,
        device=device, min_ssim=min_ssim, min_psnr=min_psnr, max_nmse=max_nmse,
    )
    summary = guarded(debug, lambda: evaluate(target_dir, pred_dir, config, quiet=quiet, debug=debug))
    write_json(json.dumps(summary.to_dict(), indent=2), json_path)
    if not quiet:
        out = stderr_console if json_path is not None and str(json_path) == "-" else Console()
        if not out.is_terminal:  # a file or a pipe: the whole table, whatever the width
            out = Console(file=out.file, width=max(out.width, 160))
        out.print(summary_table(summary))
        if summary.skipped:
            stderr_console.print(f"{len(summary.skipped)} volume(s) left out by the filters", highlight=False)
    # (without --quiet the progress display has already printed each failed volume)
    for line in ([f["error"] for f in summary.failed] if quiet else []) + summary.regressions:
        stderr_console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    if not summary.ok:
        raise typer.Exit(1)


@app.command("cs-recon")
def cs_recon_command(
    inputs: List[Path] = typer.Argument(..., help="fastMRI files (test-style, or fully sampled) or folders."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder for reconstruction files."),
    lam: Optional[str] = typer.Option(
        None, "--lam", help="Regularisation weight, dimensionless (k-space is scaled to a reference level); default per "
        "acceleration; auto: chosen per slice by hold-out validation on the data (reported per slice in --json)."
    ),
    maps: str = typer.Option(
        "1", "--maps", help="Sensitivity map sets: 1, 2 (soft-SENSE, for a field of view smaller than the object), "
        "or auto: per slice, the best-predicting of one set, two sets and a map-free joint-sparsity formulation."
    ),
    iters: Optional[int] = typer.Option(None, "--iters", help="Maximum iterations (default per acceleration)."),
    tol: float = typer.Option(1e-4, "--tol", help="Stop when the relative change of every slice is below this."),
    solver: str = typer.Option("admm", "--solver", help="admm or pdhg (Chambolle-Pock)."),
    tv: str = typer.Option("isotropic", "--tv", help="isotropic or anisotropic total variation."),
    sens: str = typer.Option(
        "espirit",
        "--sens",
        "--sens-maps",
        help="Coil sensitivities: espirit, acs (low-resolution), or a map FILE (.npy, or .h5 with dataset "
        "'sens_maps'; complex, (slices, coils, H, W) or (coils, H, W)).",
    ),
    mask: Optional[MaskType] = MaskOption,
    accel: Optional[int] = AccelOption,
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    device: str = DeviceOption,
    batch_slices: Optional[int] = typer.Option(
        None, "--batch-slices", help="Slices per batch (default: the whole volume on CUDA, 8 on a CPU; halved on CUDA OOM)."
    ),
    coil_energy: float = typer.Option(
        0.99, "--coil-energy", help="Coil compression: keep virtual coils holding this fraction of the calibration energy (1 = all coils)."
    ),
    full_readout: bool = typer.Option(
        False, "--full-readout", help="Solve on the whole readout. By default, with a column mask only the output rows "
        "plus a margin are solved (exact for the data term: the readout is fully sampled; ~2x faster on fastMRI's "
        "oversampled readout). 2D masks always use the whole grid."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the objective per iteration."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Total-variation compressed sensing (ADMM or primal-dual), all slices of a volume batched.

    Example: mrirecon cs-recon data/val --mask random --accel 4 -o recon/cs
    """
    from mrirecon.pipelines.cs_recon import CSConfig, cs_recon

    config = CSConfig(
        lam=lam, iters=iters, tol=tol, solver=solver, tv=tv, device=device, batch_slices=batch_slices, sens=sens, maps=maps,
        mask=mask_spec(mask, accel, center_fraction, seed), overwrite=overwrite, verbose=verbose,
        coil_energy=coil_energy, full_readout=full_readout,
    )
    summary = guarded(debug, lambda: cs_recon(inputs, out_dir, config, quiet=quiet, debug=debug))
    finish(summary, quiet, json_path)

class SamplePreset(str, Enum):
    small = "small"
    knee = "knee"


@app.command("sample-data")
def sample_data_command(
    out_dir: Path = typer.Argument(..., help="Folder to write the volumes into."),
    challenge: Challenge = typer.Option(Challenge.multicoil, "--challenge", help="singlecoil or multicoil files."),
    preset: SamplePreset = typer.Option(
        SamplePreset.small,
        "--preset",
        help="small: 256x144 k-space, 128x128 targets, 8 slices (seconds); knee: fastMRI knee sizes, "
        "640x368 k-space, 320x320 targets, 35 slices (realistic benchmarks, slower, about 1 GB per multi-coil file).",
    ),
    volumes: int = typer.Option(4, "--volumes", help="Number of volumes (files)."),
    slices: Optional[int] = typer.Option(None, "--slices", help="Slices per volume (default: 8 small, 35 knee)."),
    coils: Optional[int] = typer.Option(
        None,
        "--coils",
        help="Receive coils (default: 8 small, 15 knee). Single-coil files emulate one coil from this array.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same bytes; another, other anatomy."),
    device: str = typer.Option("cpu", "--device", help="cpu (default: reproducible bytes), cuda or auto."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Generate fastMRI-format sample scans (train/val style: fully sampled k-space and targets).

    A procedural knee-like anatomy (bones, cartilage, muscles, fat, vessels, ligaments) seen by a loop-coil array with smooth phase, noise, 2x readout oversampling and zero-padded phase-encode columns. Files: OUT/sample_{challenge}_{seed}_{index:03d}.h5.

    Example: mrirecon sample-data data/sample --challenge multicoil --volumes 4 --seed 0
    """
    from mrirecon.pipelines.sample_data import SampleDataConfig, generate_sample_data

    config = SampleDataConfig(challenge.value, preset.value, volumes, slices, coils, seed, device)
    summary = guarded(debug, lambda: generate_sample_data(out_dir, config, quiet=quiet, overwrite=overwrite))
    finish(summary, quiet, json_path)


@app.command("compare")
def compare_command(
    target_dir: Path = typer.Option(..., "--target", help="Folder of fully sampled target files (*.h5)."),
    preds: List[str] = typer.Option(..., "--pred", help="NAME=DIR of one method's reconstructions; repeat per method."),
    png: Optional[Path] = typer.Option(None, "--png", help="Write a figure: target, reconstructions, error maps."),
    challenge: Optional[Challenge] = typer.Option(None, "--challenge", help="Target dataset, as in eval."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Score several reconstructions side by side (fastMRI's metrics) and draw a comparison figure.

    Example: mrirecon compare --target data/val --pred zf=recon/zf --pred cs=recon/cs --png fig.png
    """
    import json

    from rich.console import Console

    from mrirecon.pipelines.compare import compare, comparison_table, parse_method
    from mrirecon.pipelines.evaluate import EvalConfig

    methods = guarded(debug, lambda: [parse_method(p) for p in preds])
    config = EvalConfig(challenge=None if challenge is None else challenge.value, device=device)
    summary = guarded(debug, lambda: compare(target_dir, methods, config, png=png, quiet=True))
    write_json(json.dumps(summary.to_dict(), indent=2), json_path)
    if not quiet:
        out = stderr_console if json_path is not None and str(json_path) == "-" else Console()
        out.print(comparison_table(summary))
        if summary.figure:
            out.print(f"figure: {summary.figure}", highlight=False)
    for name, s in summary.methods.items():
        for failure in s.failed:
            stderr_console.print(f"[red]error:[/red] {name}: {failure['error']}", highlight=False, soft_wrap=True)
    if not summary.ok:
        raise typer.Exit(1)


# @@ commands of later issues are added below this line @@


def main() -> None:
    """Console-script entry point."""
    app()
