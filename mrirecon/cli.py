"""The ``mrirecon`` command line: parse, validate, call a pipeline, print its summary."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from mrirecon import __version__, allocator, openmp  # noqa: F401  (openmp: the wait policy, before torch loads)
from mrirecon.cli_errors import GuardedGroup, fail, finite, guarded, output_file, output_folder
from mrirecon.io.atomic import write_text_atomic
from mrirecon.io.errors import OutputExistsError
from mrirecon.pipelines.common import BatchSummary, stderr_console

#: ``--help`` groups the commands by pipeline stage, in this order.
DATA, RECONSTRUCT, TRAIN, SCORE = "Data", "Reconstruct", "Train", "Score"
PANEL_ORDER = (DATA, RECONSTRUCT, TRAIN, SCORE)
#: Within a stage, the order a user runs them in; commands not named here follow, as defined.
COMMAND_ORDER = ("sample-data", "convert", "subsample", "export", "zf-recon", "cs-recon", "unet-recon", "status", "train", "eval", "compare")


class PipelineOrder(GuardedGroup):
    """Lists commands in pipeline order (stage, then ``COMMAND_ORDER``), not definition order;
    runs each under the one error path (``GuardedGroup``)."""

    def list_commands(self, ctx: typer.Context) -> List[str]:
        names = super().list_commands(ctx)

        def key(name: str) -> tuple:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            stage = PANEL_ORDER.index(panel) if panel in PANEL_ORDER else len(PANEL_ORDER)
            rank = COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER)
            return stage, rank, names.index(name)

        return sorted(names, key=key)


app = typer.Typer(
    name="mrirecon",
    help="Accelerated MRI reconstruction from fastMRI HDF5 files.",
    cls=PipelineOrder,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mrirecon {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Accelerated MRI reconstruction from fastMRI HDF5 files: data, reconstruct, train, score."""


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
JsonOption = typer.Option(
    None, "--json", help="Write the summary as JSON to this file ('-' for stdout).", callback=output_file
)
DebugOption = typer.Option(False, "--debug", help="Show tracebacks.")
OverwriteOption = typer.Option(False, "--overwrite", help="Replace existing outputs.")


def write_json(text: str, target: Optional[Path]) -> None:
    """The JSON summary to stdout (``-``) or, through the atomic writer, to a file."""
    if target is None:
        return
    if str(target) == "-":
        sys.stdout.write(text + "\n")
    else:
        write_text_atomic(target, text + "\n", overwrite=True)


def refuse_existing(overwrite: bool, *outputs: Optional[Path]) -> None:
    """Exit 2 before any work if an output file exists and ``--overwrite`` was not given."""
    for path in outputs:
        if path is not None and str(path) != "-" and path.exists() and not overwrite:
            fail(str(OutputExistsError(path)))


def finish(summary: BatchSummary, quiet: bool, json_path: Optional[Path]) -> None:
    """Print the batch summary, then write the JSON (a failed write still leaves the summary
    printed); exit 1 if any file failed. With ``quiet`` only the failed files' errors are printed
    (without it the progress display has printed them already)."""
    if quiet:
        for result in summary.failed:
            stderr_console.print(f"[red]error:[/red] {escape(str(result.error))}", highlight=False, soft_wrap=True)
    elif "dry_run" not in summary.extra:
        n_ok, n_bad = len(summary.succeeded), len(summary.failed)
        colour = "green" if n_bad == 0 else "red"
        kept = [f"{len(summary.with_status(s))} {s}" for s in ("skipped", "redone") if summary.with_status(s)]
        detail = f" ({', '.join(kept)})" if kept else ""
        stderr_console.print(
            f"[{colour}]{summary.command}: {n_ok} file(s) done{detail}, {n_bad} failed[/{colour}]", highlight=False
        )
    write_json(summary.to_json(), json_path)
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
AccelOption = typer.Option(None, "--accel", help="Acceleration factor, e.g. 4 or 8.", callback=finite(1, above=True))
CenterOption = typer.Option(
    None, "--center-fraction", help="Fraction of centre columns kept (default: 0.08 at 4x, 0.04 at 8x).", callback=finite(0, 1, above=True, below=True))
SeedOption = typer.Option(
    None, "--seed", help="Mask seed; the per-volume seed is (SEED, *ord(filename)), fastMRI's ord(filename) without it.", callback=finite(0, 2**32 - 1))
NoiseFloorOption = typer.Option(
    True, "--noise-floor/--no-noise-floor", help="Hard-data-consistent outputs (cs-recon's default, the VarNet's): add "
    "in quadrature the noise energy of the k-space samples they predict instead of measuring, so the background "
    "sits at the fully sampled image's noise level, not below it. Measured per slice on noise-only readout rows; "
    "none added where the object spans the readout (reported per slice in --json).")
DeviceOption = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda.")

# Batch options of every command that writes one output per input (see "On a cluster" in the README).
ShardOption = typer.Option(
    None, "--shard", help="Process shard I of N (0-based, e.g. 0/4), files balanced by size. Default: from "
    "SLURM_ARRAY_TASK_ID/_COUNT/_MIN, split again over torchrun's RANK/WORLD_SIZE.", rich_help_panel="Batch",
)
SkipExistingOption = typer.Option(
    False, "--skip-existing", help="Keep outputs that are complete and written with the same options; redo "
    "partial, invalid or other-option ones.", rich_help_panel="Batch",
)
DryRunOption = typer.Option(False, "--dry-run", help="Print this shard's files (input TAB output) and stop.",
                            rich_help_panel="Batch")
RequeueOption = typer.Option(
    False, "--requeue", help="On SIGUSR1 (sbatch --signal=B:USR1@120), requeue this SLURM job (scontrol requeue "
    "$SLURM_JOB_ID) after stopping; SIGTERM (scancel) only stops.", rich_help_panel="Batch",
)
GraceOption = typer.Option(
    30.0, "--grace", help="Seconds the file in progress may still take after SIGTERM/SIGINT/SIGUSR1; then it is "
    "abandoned (nothing half-written). Exit status 128+signal.", rich_help_panel="Batch",
)
StageOption = typer.Option(
    None, "--stage", help="Copy each input to this folder (a node's local scratch, e.g. $TMPDIR) before reading it; "
    "the copy is removed after.", rich_help_panel="Batch",
)


def batch_options(shard: Optional[str], skip_existing: bool, dry_run: bool, requeue: bool, grace: float,
                  stage: Optional[Path] = None):
    """The ``BatchOptions`` of the batch flags (a bad ``--shard`` is exit 2)."""
    from mrirecon.pipelines.batch import BatchOptions
    from mrirecon.pipelines.shard import parse_shard

    try:
        parsed = None if shard is None else parse_shard(shard)
    except ValueError as exc:
        fail(str(exc))
    return BatchOptions(shard=parsed, skip_existing=skip_existing, dry_run=dry_run, requeue=requeue, grace=grace,
                        stage=stage)


@app.command("subsample", rich_help_panel=DATA)
def subsample_command(
    inputs: List[Path] = typer.Argument(..., help="Fully sampled fastMRI files or folders of them."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (same file names).", callback=output_folder),
    mask: MaskType = typer.Option(MaskType.random, "--mask", help="Mask type."),
    accel: int = typer.Option(4, "--accel", help="Acceleration factor.", callback=finite(1, above=True)),
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    shard: Optional[str] = ShardOption,
    skip_existing: bool = SkipExistingOption,
    dry_run: bool = DryRunOption,
    requeue: bool = RequeueOption,
    grace: float = GraceOption,
    stage: Optional[Path] = StageOption,
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
    refuse_existing(overwrite or skip_existing, json_path)  # a resumed batch replaces its summary
    batch = batch_options(shard, skip_existing, dry_run, requeue, grace, stage)
    config = SubsampleConfig(mask=spec, overwrite=overwrite, shard=batch.shard, skip_existing=skip_existing,
                             dry_run=dry_run, requeue=requeue, grace=grace, stage=stage)
    summary = guarded(debug, lambda: subsample(inputs, out_dir, config, quiet=quiet, debug=debug))
    finish(summary, quiet, json_path)


@app.command("zf-recon", rich_help_panel=RECONSTRUCT)
def zf_recon_command(
    inputs: List[Path] = typer.Argument(..., help="fastMRI files (test-style, or fully sampled) or folders."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder for reconstruction files.", callback=output_folder),
    mask: Optional[MaskType] = MaskOption,
    accel: Optional[int] = AccelOption,
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    device: str = DeviceOption,
    batch_slices: int = typer.Option(16, "--batch-slices", help="Slices per batch on the device.", callback=finite(1)),
    shard: Optional[str] = ShardOption,
    skip_existing: bool = SkipExistingOption,
    dry_run: bool = DryRunOption,
    requeue: bool = RequeueOption,
    grace: float = GraceOption,
    stage: Optional[Path] = StageOption,
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
    refuse_existing(overwrite or skip_existing, json_path)  # a resumed batch replaces its summary
    batch = batch_options(shard, skip_existing, dry_run, requeue, grace, stage)
    summary = guarded(debug, lambda: zf_recon(inputs, out_dir, config, quiet=quiet, debug=debug, batch=batch))
    finish(summary, quiet, json_path)


class InputFormat(str, Enum):
    auto = "auto"
    npy = "npy"
    twix = "twix"
    ismrmrd = "ismrmrd"
    cfl = "cfl"
    ra = "ra"


@app.command("convert", rich_help_panel=DATA)
def convert_command(
    input_path: Path = typer.Argument(
        ..., help="Raw k-space: a .npy array, a Siemens twix .dat, an ISMRMRD .h5, or BART's .cfl/.hdr pair or .ra."
    ),
    out_path: Path = typer.Option(..., "--out", "-o", help="The fastMRI .h5 file to write."),
    input_format: InputFormat = typer.Option(
        InputFormat.auto, "--format", help="Input format; auto detects it from the file's content."
    ),
    measurement: int = typer.Option(
        -1, "--measurement", help="twix: which measurement of a multi-measurement file (default -1, the last)."
    ),
    axes: Optional[str] = typer.Option(
        None, "--axes", help=".npy: axis order, letters S,C,H,W (default SCHW for 4D, SHW for 3D, HW for 2D)."
    ),
    readout_oversampling: Optional[int] = typer.Option(
        None,
        "--readout-oversampling",
        help="Readout oversampling factor; the recon crop is H/factor (fastMRI: 2). Default: the file's, else 1.",
    ),
    recon_size: Optional[str] = typer.Option(None, "--recon-size", help="Recon crop as HxW, e.g. 320x320."),
    undersampled: bool = typer.Option(
        False, "--undersampled", help="The array is already undersampled: write a test-style file with its mask."
    ),
    prewhiten: bool = typer.Option(
        False, "--prewhiten", help="Whiten the coils with the noise scan (--noise, or the file's noise acquisitions)."
    ),
    noise: Optional[Path] = typer.Option(None, "--noise", help="A .npy noise-only scan (coils, samples) for --prewhiten."),
    acquisition: str = typer.Option("UNKNOWN", "--acquisition", help="The 'acquisition' attribute to record."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Convert raw k-space (.npy, Siemens twix, ISMRMRD, BART .cfl/.ra) into a fastMRI file (with header and target).

    Example: mrirecon convert meas_MID42_gre.dat -o data/gre.h5 --prewhiten
    """
    from mrirecon.pipelines.common import BatchSummary
    from mrirecon.pipelines.convert import ConvertConfig, convert_file

    size = None
    if recon_size is not None:
        try:
            h, w = (int(v) for v in recon_size.lower().split("x"))
            size = (h, w)
        except ValueError:
            fail(f"--recon-size must look like 320x320, got {recon_size!r}")
    config = ConvertConfig(
        axes=axes,
        readout_oversampling=readout_oversampling,
        recon_size=size,
        undersampled=undersampled,
        acquisition=acquisition,
        overwrite=overwrite,
        input_format=input_format.value,
        measurement=measurement,
        noise=noise,
        prewhiten=prewhiten,
    )
    refuse_existing(overwrite, json_path)
    result = guarded(debug, lambda: convert_file(input_path, out_path, config))
    summary = BatchSummary("convert", [result])
    finish(summary, quiet, json_path)


class ExportFormat(str, Enum):
    nifti = "nifti"
    dicom = "dicom"
    cfl = "cfl"
    ra = "ra"
    png = "png"


@app.command("export", rich_help_panel=DATA)
def export_command(
    inputs: List[Path] = typer.Argument(..., help="Reconstruction files (or fastMRI files: their target), or folders of them."),
    fmt: ExportFormat = typer.Option(..., "--format", help="nifti (.nii.gz), dicom (a series folder), cfl or ra (BART) or png (montage)."),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", callback=output_folder, help="Output folder; each input NAME.h5 gives OUT/NAME.nii.gz, OUT/NAME/, ..."
    ),
    geometry_from: Optional[Path] = typer.Option(
        None,
        "--geometry-from",
        help="The converted fastMRI file (or folder) a recon came from: FOV, spacing and slice positions.",
    ),
    kspace: bool = typer.Option(False, "--kspace", help="Export the k-space of fastMRI files (cfl and ra only)."),
    overwrite: bool = OverwriteOption,
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Export reconstructions to NIfTI, DICOM, BART .cfl/.ra or a PNG montage.

    Example: mrirecon export recon/gre.h5 --format dicom -o dicom/ --geometry-from data/gre.h5
    """
    from mrirecon.pipelines.common import expand_inputs, run_batch
    from mrirecon.pipelines.export import ExportConfig, check_plan, export_file

    if kspace and fmt not in (ExportFormat.cfl, ExportFormat.ra):
        fail("--kspace exports k-space, which only --format cfl or ra holds")
    config = ExportConfig(fmt.value, out_dir, geometry_from, kspace, overwrite)
    files = guarded(debug, lambda: expand_inputs(inputs))
    guarded(debug, lambda: check_plan(files, config))
    refuse_existing(overwrite, json_path)
    summary = run_batch("export", files, lambda p: export_file(p, config), quiet=quiet, debug=debug)
    finish(summary, quiet, json_path)


@app.command("train", rich_help_panel=TRAIN)
def train_command(
    train_dir: Optional[Path] = typer.Option(None, "--train", help="Folder of fully sampled training files."),
    val_dir: Optional[Path] = typer.Option(None, "--val", help="Folder of fully sampled validation files."),
    run_dir: Path = typer.Option(..., "--out", "-o", help="Run folder: checkpoints, config, metrics, curves.", callback=output_folder),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML preset, e.g. configs/unet_singlecoil.yaml."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs to train (default 10).", callback=finite(1)),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after this many optimiser steps in all.", callback=finite(0)),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this many minutes of training (benchmarks; not deterministic).", callback=finite(0, above=True)),
    max_cpu_minutes: Optional[float] = typer.Option(None, "--max-cpu-minutes", help="Stop after this many minutes of CPU time of the training process (benchmarks: independent of the machine's load).", callback=finite(0, above=True)),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Slices per step and process (default 1).", callback=finite(1)),
    norm: Optional[str] = typer.Option(None, "--norm", help="group (default), instance, batch, layer or none."),
    groups: Optional[int] = typer.Option(None, "--groups", help="GroupNorm groups (default 32; fewer if a layer has fewer channels).", callback=finite(1)),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adam (default), rmsprop or sgd (with momentum)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 1e-3).", callback=finite(0, above=True)),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay (default 0).", callback=finite(0)),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="step (default), cosine or none."),
    loss: Optional[str] = typer.Option(None, "--loss", help="l1 (default) or ssim."),
    model: Optional[str] = typer.Option(None, "--model", help="unet (default) or varnet (E2E-VarNet; multi-coil data only)."),
    cascades: Optional[int] = typer.Option(None, "--cascades", help="VarNet cascades (default 12).", callback=finite(1)),
    sens_chans: Optional[int] = typer.Option(None, "--sens-chans", help="Channels of the VarNet's sensitivity U-Net (default 8).", callback=finite(1)),
    chans: Optional[int] = typer.Option(None, "--chans", help="Channels of the first U-Net block (default 32; VarNet: each cascade's U-Net).", callback=finite(1)),
    pools: Optional[int] = typer.Option(None, "--pools", help="Down/up-sampling levels (default 4).", callback=finite(1)),
    residual: Optional[bool] = typer.Option(None, "--residual/--no-residual", help="Add the input to the output (default off, as fastMRI)."),
    mask: Optional[MaskType] = typer.Option(None, "--mask", help="Training/validation mask type (default random)."),
    accel: Optional[int] = typer.Option(None, "--accel", help="Acceleration (default 4).", callback=finite(1, above=True)),
    center_fraction: Optional[float] = CenterOption,
    device: Optional[str] = typer.Option(None, "--device", help="auto (CUDA when present), cpu or cuda."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (default: the CPUs, at most 8, on CUDA; 0 on CPU).", callback=finite(0)),
    device_transform: Optional[bool] = typer.Option(None, "--device-transform/--no-device-transform", help="U-Net: inverse FFT, RSS, crop and normalisation on the device, batched (workers only read)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of initialisation, data order and training masks.", callback=finite(0, 2**32 - 1)),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last.pt."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start a new run in an --out folder that holds one (its files are replaced)."),
    quiet: bool = QuietOption,
    json_path: Optional[Path] = JsonOption,
    debug: bool = DebugOption,
) -> None:
    """Train a U-Net (zero-filled image -> target) or an E2E-VarNet (masked multi-coil k-space -> target); torchrun runs it with DDP.

    Example: mrirecon train --train data/train --val data/val -o runs/unet --config configs/unet_singlecoil.yaml
    Example: mrirecon train --train data/train --val data/val -o runs/varnet --config configs/varnet_tiny.yaml
    """
    import json

    from mrirecon.pipelines.train import run_training

    overrides = {
        "train_dir": None if train_dir is None else str(train_dir),
        "val_dir": None if val_dir is None else str(val_dir),
        "run_dir": str(run_dir),
        "epochs": epochs, "max_steps": max_steps, "max_minutes": max_minutes, "max_cpu_minutes": max_cpu_minutes, "batch_size": batch_size, "norm": norm, "groups": groups,
        "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "schedule": schedule, "loss": loss,
        "model": model, "cascades": cascades, "sens_chans": sens_chans, "chans": chans, "pools": pools, "residual": residual, "mask": None if mask is None else mask.value, "accel": accel,
        "center_fraction": center_fraction, "device": device, "amp": amp, "compile": compile_model,
        "workers": workers, "device_transform": device_transform, "seed": seed,
    }
    refuse_existing(overwrite, json_path)
    result = guarded(debug, lambda: run_training(config_file, overrides, resume=resume, overwrite=overwrite, quiet=quiet))
    summary = {"run_dir": str(result.run_dir), "steps": result.steps, "epochs": result.epochs_done,
               "best_val_ssim": result.best_ssim, "interrupted": result.interrupted,
               "zero_filled_val_ssim": None if result.zero_filled is None else result.zero_filled.ssim,
               "history": result.history}
    write_json(json.dumps(summary, indent=2), json_path)
    if not quiet:
        best = "-" if result.best_ssim is None else f"{result.best_ssim:.4f}"
        state = "stopped (resume with --resume)" if result.interrupted else "done"
        stderr_console.print(f"train: {state} after {result.epochs_done} epoch(s), {result.steps} step(s), "
                             f"best validation SSIM {best}; {result.run_dir}", highlight=False)
    if result.interrupted:  # 128 + signal, as every long command (130 for Ctrl-C, 143 for SIGTERM)
        raise typer.Exit(128 + int(result.stop_signal or 2))


@app.command("unet-recon", rich_help_panel=RECONSTRUCT)
def unet_recon_command(
    inputs: List[Path] = typer.Argument(..., help="fastMRI files (test-style, or fully sampled with --mask) or folders."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint from 'mrirecon train', e.g. RUN_DIR/best.pt."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder for reconstruction files.", callback=output_folder),
    mask: Optional[MaskType] = MaskOption,
    accel: Optional[int] = AccelOption,
    center_fraction: Optional[float] = CenterOption,
    seed: Optional[int] = SeedOption,
    device: str = DeviceOption,
    batch_slices: int = typer.Option(8, "--batch-slices", help="Slices per batch on the device.", callback=finite(1)),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast."),
    noise_floor: bool = NoiseFloorOption,
    shard: Optional[str] = ShardOption,
    skip_existing: bool = SkipExistingOption,
    dry_run: bool = DryRunOption,
    requeue: bool = RequeueOption,
    grace: float = GraceOption,
    stage: Optional[Path] = StageOption,
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
                             batch_slices=batch_slices, amp=amp, overwrite=overwrite, noise_floor=noise_floor)
    refuse_existing(overwrite or skip_existing, json_path)  # a resumed batch replaces its summary
    batch = batch_options(shard, skip_existing, dry_run, requeue, grace, stage)
    summary = guarded(debug, lambda: unet_recon(inputs, out_dir, config, quiet=quiet, debug=debug, batch=batch))
    finish(summary, quiet, json_path)


@app.command("eval", rich_help_panel=SCORE)
def eval_command(
    target_dir: Path = typer.Option(..., "--target", help="Fully sampled target file, or a folder of them (*.h5)."),
    pred_dir: Path = typer.Option(
        ..., "--pred", help="Reconstruction file, or a folder of reconstructions with the targets' names."
    ),
    challenge: Optional[Challenge] = typer.Option(
        None, "--challenge", help="Target dataset: reconstruction_esc (singlecoil) or _rss (multicoil); default from the k-space rank."
    ),
    acquisition: Optional[str] = typer.Option(None, "--acquisition", help="Only volumes of this acquisition, e.g. CORPD_FBK."),
    acceleration: Optional[float] = typer.Option(
        None, "--acceleration", help="Only volumes of this acceleration (attribute of the target, else of the prediction).", callback=finite(1, above=True)),
    min_ssim: Optional[float] = typer.Option(None, "--min-ssim", help="Exit 1 if the mean SSIM is below this.", callback=finite(-1, 1)),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", help="Exit 1 if the mean PSNR is below this.", callback=finite()),
    max_nmse: Optional[float] = typer.Option(None, "--max-nmse", help="Exit 1 if the mean NMSE is above this.", callback=finite(0)),
    device: str = DeviceOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
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
    refuse_existing(overwrite, json_path)
    summary = guarded(debug, lambda: evaluate(target_dir, pred_dir, config, quiet=quiet, debug=debug))
    write_json(json.dumps(summary.to_dict(), indent=2), json_path)
    if not quiet:
        out = stderr_console if json_path is not None and str(json_path) == "-" else Console()
        if not out.is_terminal:  # a file or a pipe: the whole table, whatever the width
            out = Console(file=out.file, width=max(out.width, 160))
        out.print(summary_table(summary))
    # (without --quiet the progress display has already printed each failed volume)
    for line in ([f["error"] for f in summary.failed] if quiet else []) + summary.regressions:
        stderr_console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    if not quiet:
        left_out = f", {len(summary.skipped)} left out by the filters" if summary.skipped else ""
        colour = "green" if summary.ok else "red"
        stderr_console.print(f"[{colour}]eval: {len(summary.volumes)} volume(s) scored, {len(summary.failed)} failed"
                             f"{left_out}[/{colour}]", highlight=False)
    if not summary.ok:
        raise typer.Exit(1)


def _lam_value(ctx, param, value: Optional[str]) -> Optional[str]:
    """``--lam``: ``auto``, ``discrepancy`` or a finite non-negative number (as text; the pipeline parses it)."""
    if value is None or value in ("auto", "discrepancy"):
        return value
    try:
        number = float(value)
    except ValueError:
        fail(f"--lam must be a non-negative number, auto or discrepancy, got {value!r}")
    finite(0)(ctx, param, number)
    return value


@app.command("cs-recon", rich_help_panel=RECONSTRUCT)
def cs_recon_command(
    inputs: List[Path] = typer.Argument(..., help="fastMRI files (test-style, or fully sampled) or folders."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder for reconstruction files.", callback=output_folder),
    lam: Optional[str] = typer.Option(
        None, "--lam", help="Regularisation weight, dimensionless (k-space is scaled to a reference level). auto (default): "
        "per slice, the per-acceleration default, raised in proportion to the zero-filled image's noise-to-signal "
        "ratio (estimated from the k-space) where that is above the tuned scans' (multi-coil; reported per slice "
        "in --json); discrepancy: per slice by a discrepancy principle (two probe solves, about 2x the time); a "
        "number: that lambda everywhere.",
        callback=_lam_value),
    maps: str = typer.Option(
        "auto", "--maps", help="Sensitivity map sets: 1, 2 (soft-SENSE, for a field of view smaller than the object), "
        "or auto (default): per slice, one ESPIRiT set where the maps explain the calibration data, else a map-free "
        "joint-sparsity formulation (the choice and its test value are reported per slice in --json)."
    ),
    reg: str = typer.Option(
        "tv", "--reg", help="Regulariser: tv, wavelet (L1 of an orthonormal Haar wavelet with random shifts, by FISTA) "
        "or tv+wavelet (both at the same lambda, by PDHG)."
    ),
    data_consistency: str = typer.Option(
        "hard", "--data-consistency", help="hard (default): the output keeps every measured k-space sample exactly, "
        "the solution fills in the rest, and the coil images are combined by RSS (as fastMRI's targets); soft: the "
        "solution's own image, whose measured samples the L2 data term has smoothed."),
    noise_floor: bool = NoiseFloorOption,
    iters: Optional[int] = typer.Option(None, "--iters", help="Maximum iterations (default per acceleration).", callback=finite(1)),
    tol: float = typer.Option(1e-4, "--tol", help="Stop when the relative change of every slice is below this.", callback=finite(0)),
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
        None, "--batch-slices", help="Slices per batch (default: the whole volume on CUDA, 8 on a CPU; halved on CUDA OOM).", callback=finite(1)),
    coil_energy: float = typer.Option(
        0.99, "--coil-energy", help="Coil compression: keep virtual coils holding this fraction of the calibration energy (1 = all coils).", callback=finite(0, 1, above=True)),
    full_readout: bool = typer.Option(
        False, "--full-readout", help="Solve on the whole readout. By default, with a column mask only the output rows "
        "plus a margin are solved (exact for the data term: the readout is fully sampled; ~2x faster on fastMRI's "
        "oversampled readout). 2D masks always use the whole grid."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print the objective per iteration."),
    compile_iteration: bool = typer.Option(
        False, "--compile", help="CUDA: run ADMM's multi-coil iteration through torch.compile with CUDA graphs "
        "(mode reduce-overhead); compiling costs time once per chunk shape, so it pays on many or large volumes. "
        "Ignored on a CPU (noted). Default: eager."),
    shard: Optional[str] = ShardOption,
    skip_existing: bool = SkipExistingOption,
    dry_run: bool = DryRunOption,
    requeue: bool = RequeueOption,
    grace: float = GraceOption,
    stage: Optional[Path] = StageOption,
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
        lam=lam, iters=iters, tol=tol, solver=solver, tv=tv, device=device, batch_slices=batch_slices, sens=sens, maps=maps, reg=reg,
        mask=mask_spec(mask, accel, center_fraction, seed), overwrite=overwrite, verbose=verbose,
        coil_energy=coil_energy, full_readout=full_readout, compile=compile_iteration, data_consistency=data_consistency,
        noise_floor=noise_floor,
    )
    refuse_existing(overwrite or skip_existing, json_path)  # a resumed batch replaces its summary
    batch = batch_options(shard, skip_existing, dry_run, requeue, grace, stage)
    summary = guarded(debug, lambda: cs_recon(inputs, out_dir, config, quiet=quiet, debug=debug, batch=batch))
    finish(summary, quiet, json_path)

class SamplePreset(str, Enum):
    small = "small"
    knee = "knee"


@app.command("sample-data", rich_help_panel=DATA)
def sample_data_command(
    out_dir: Path = typer.Argument(..., help="Folder to write the volumes into."),
    challenge: Challenge = typer.Option(Challenge.multicoil, "--challenge", help="singlecoil or multicoil files."),
    preset: SamplePreset = typer.Option(
        SamplePreset.small,
        "--preset",
        help="small: 256x144 k-space, 128x128 targets, 8 slices (seconds); knee: fastMRI knee sizes, "
        "640x368 k-space, 320x320 targets, 35 slices (realistic benchmarks, slower, about 1 GB per multi-coil file).",
    ),
    volumes: int = typer.Option(4, "--volumes", help="Number of volumes (files).", callback=finite(1)),
    slices: Optional[int] = typer.Option(None, "--slices", help="Slices per volume (default: 8 small, 35 knee).", callback=finite(1)),
    coils: Optional[int] = typer.Option(
        None,
        "--coils",
        help="Receive coils (default: 8 small, 15 knee). Single-coil files emulate one coil from this array.",
        callback=finite(1),
    ),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same bytes; another, other anatomy.", callback=finite(0, 2**32 - 1)),
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
    refuse_existing(overwrite, json_path)
    summary = guarded(debug, lambda: generate_sample_data(out_dir, config, quiet=quiet, overwrite=overwrite))
    finish(summary, quiet, json_path)


@app.command("compare", rich_help_panel=SCORE)
def compare_command(
    target_dir: Path = typer.Option(..., "--target", help="Fully sampled target file, or a folder of them (*.h5)."),
    preds: List[str] = typer.Option(
        ..., "--pred", help="NAME=PATH: one method's reconstruction file or folder; repeat per method."
    ),
    png: Optional[Path] = typer.Option(
        None, "--png", help="Write a figure: target, reconstructions, error maps.", callback=output_file
    ),
    challenge: Optional[Challenge] = typer.Option(None, "--challenge", help="Target dataset, as in eval."),
    device: str = DeviceOption,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --png and --json files."),
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
    refuse_existing(overwrite, png, json_path)
    config = EvalConfig(challenge=None if challenge is None else challenge.value, device=device)
    summary = guarded(debug, lambda: compare(target_dir, methods, config, png=png, quiet=quiet, debug=debug))
    write_json(json.dumps(summary.to_dict(), indent=2), json_path)
    if not quiet:
        out = stderr_console if json_path is not None and str(json_path) == "-" else Console()
        out.print(comparison_table(summary))
        if summary.figure:
            out.print(f"figure: {summary.figure}", highlight=False)
    if summary.warning():
        stderr_console.print(f"[yellow]warning[/yellow] {escape(summary.warning())}", highlight=False, soft_wrap=True)
    # (without --quiet the progress display has already printed each failed volume)
    for name, s in (summary.methods.items() if quiet else []):
        for failure in s.failed:
            stderr_console.print(f"[red]error:[/red] {name}: {failure['error']}", highlight=False, soft_wrap=True)
    if not quiet:
        colour = "green" if summary.ok else "red"
        stderr_console.print(f"[{colour}]{summary.summary_line}[/{colour}]", highlight=False)
    if not summary.ok:
        raise typer.Exit(1)


# @@ commands of later issues are added below this line @@


@app.command("status", rich_help_panel=RECONSTRUCT)
def status_command(
    out_dir: Path = typer.Argument(..., help="The output folder of a batch (its .mrirecon/manifest-*.jsonl)."),
    inputs: Optional[List[Path]] = typer.Option(
        None, "--inputs", help="The batch's inputs (files or folders; repeat): adds the pending count."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the merged status as JSON on stdout."),
    debug: bool = DebugOption,
) -> None:
    """Merge the manifests of all shards: done, failed, pending, throughput, slowest files.

    Example: mrirecon status recon/cs --inputs data/val
    """
    import json

    from mrirecon.pipelines.status import batch_report, status_text

    report = guarded(debug, lambda: batch_report(out_dir, inputs))
    sys.stdout.write((json.dumps(report.to_dict(), indent=2) if json_out else status_text(report)) + "\n")


def main() -> None:
    """Console-script entry point (``mrirecon`` in usage lines, also under ``python -m``)."""
    allocator.keep_freed_memory()
    app(prog_name="mrirecon")
