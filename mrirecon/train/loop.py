"""The training loop: data, model, optimiser, validation every epoch, checkpoints, resume, DDP."""

from __future__ import annotations

import json
import math
import random
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from mrirecon.io.atomic import atomic_path, write_text_atomic
from mrirecon.console import stderr_console
from mrirecon.mri.crop import center_crop
from mrirecon.train.checkpoint import build_model, rng_state, save_checkpoint, set_rng_state
from mrirecon.train.config import TrainConfig
from mrirecon.train.dataset import EpochSampler, SliceDataset, list_volumes
from mrirecon.train.device_transform import KspaceSliceDataset, collate_kspace, device_batch
from mrirecon.train.distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shutdown
from mrirecon.train.inference import autocast
from mrirecon.train.optim import make_optimizer, make_scheduler
from mrirecon.train.validate import ValidationResult, validate
from mrirecon.train.workers import default_workers, loader_workers

#: Under DDP, steps between the all-ranks stop checks (each is a host sync of every rank).
STOP_CHECK_STEPS = 20


@dataclass
class TrainResult:
    """What a run did."""

    run_dir: Path
    steps: int
    epochs_done: int
    history: list[dict[str, Any]]
    best_ssim: float | None
    zero_filled: ValidationResult | None
    interrupted: bool
    model: torch.nn.Module | None = field(repr=False)  # None when a resumed run was already complete
    stop_signal: int | None = None  # the signal that interrupted the run (SIGINT or SIGTERM)


class _StopRequest:
    """SIGINT/SIGTERM set a flag that the loop checks between steps (a second Ctrl-C aborts)."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = self.signum or signum

    @contextmanager
    def installed(self) -> Iterator["_StopRequest"]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "l1":
        return F.l1_loss
    from fastmri.losses import SSIMLoss

    ssim = SSIMLoss()

    def ssim_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ssim.w = ssim.w.to(output.device)
        data_range = (target.amax(dim=(1, 2, 3)) - target.amin(dim=(1, 2, 3))).clamp_min(1e-6)
        return ssim(output, target, data_range)

    return ssim_loss


def model_outputs(
    forward: Callable[..., torch.Tensor],
    batch: dict[str, torch.Tensor],
    device: torch.device,
    kind: str,
    amp: bool = False,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's output for a training batch and its target, both ``(B, 1, h, w)`` float, on
    the scale the loss compares: per-image normalised for the U-Net; for the VarNet the RSS
    image cropped to the target, both divided by the volume maximum (fastMRI's data range)."""
    if kind == "varnet":
        target = batch["target"].to(device, non_blocking=True)
        with autocast(device, amp):
            output = forward(batch["kspace"].to(device, non_blocking=True), batch["mask"].to(device, non_blocking=True),
                             batch["num_low"].to(device), rows=target.shape[-2])
        output = center_crop(output.float(), tuple(target.shape[-2:]))
        scale = batch["max"].to(device).view(-1, 1, 1)
        return (output / scale).unsqueeze(1), (target / scale).unsqueeze(1)
    image = batch["image"].to(device, non_blocking=True).unsqueeze(1)
    target = batch["target"].to(device, non_blocking=True).unsqueeze(1)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    with autocast(device, amp):
        output = forward(image)
    return output.float(), target


def write_run_files(run_dir: Path, history: list[dict[str, Any]], label: str = "U-Net") -> None:
    """``metrics.jsonl`` (one line per epoch) and ``curves.png`` (loss and validation SSIM)."""
    write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history), overwrite=True)
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_ssim) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("L1 loss (normalised)")
    ax_loss.legend()
    ax_ssim.plot(epochs, [h["val_ssim"] for h in history], "o-", color="C2", label=label)
    if history[0].get("val_zf_ssim") is not None:
        ax_ssim.axhline(history[0]["val_zf_ssim"], color="grey", ls="--", label="zero-filled")
    ax_ssim.set_xlabel("epoch")
    ax_ssim.set_ylabel("validation SSIM")
    ax_ssim.legend()
    fig.tight_layout()
    try:
        with atomic_path(run_dir / "curves.png", overwrite=True) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)


def train(
    config: TrainConfig,
    *,
    resume_state: dict[str, Any] | None = None,
    quiet: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train the model ``config`` names (U-Net or VarNet) as it says, writing into ``config.run_dir`` (rank 0 only).

    ``resume_state`` is a loaded ``last.pt``: the run continues from exactly where it
    stopped. ``on_step(step)`` is called after every optimiser step.
    Under ``torchrun`` this joins the process group and trains with DDP.
    """
    info, device = init_distributed(config.device)
    try:
        return _train(config, info, device, resume_state, quiet, on_step)
    finally:
        shutdown(info)


def _train(
    config: TrainConfig,
    info: DistInfo,
    device: torch.device,
    resume_state: dict[str, Any] | None,
    quiet: bool,
    on_step: Callable[[int], None] | None,
) -> TrainResult:
    run_dir = Path(config.run_dir)
    show = info.is_main and not quiet
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    channels_last = device.type == "cuda" if config.channels_last is None else bool(config.channels_last)

    _seed_everything(config.seed)
    model = build_model(config)
    if info.enabled and config.norm == "batch" and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    on_device = config.device_transform and config.model == "unet"  # the VarNet takes k-space anyway
    train_set = (KspaceSliceDataset if on_device else SliceDataset)(
        list_volumes(config.train_dir), config.mask_spec, train=True, seed=config.seed, rank=info.rank, kind=config.model)
    val_files = list_volumes(config.val_dir)
    sampler = EpochSampler(len(train_set), shuffle=True, seed=config.seed, rank=info.rank, world=info.world)
    steps_per_epoch = math.ceil(sampler.per_rank / config.batch_size)
    workers, workers_warning = loader_workers(default_workers(device.type) if config.workers is None else config.workers)
    if workers_warning and show:
        stderr_console.print(f"[yellow]warning[/yellow] {workers_warning}", highlight=False)
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=False,
        collate_fn=collate_kspace if on_device else None,
    )
    optimizer = make_optimizer(model.parameters(), config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    loss_fn = _loss_fn(config.loss)

    step, epoch, epoch_step = 0, 0, 0
    epoch_loss = torch.zeros(2, dtype=torch.float64)
    history: list[dict[str, Any]] = []
    best_ssim: float | None = None
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        set_rng_state(resume_state["rng"])
        step, epoch, epoch_step = int(resume_state["step"]), int(resume_state["epoch"]), int(resume_state["epoch_step"])
        epoch_loss = resume_state["epoch_loss"].to(torch.float64)
        history = list(resume_state.get("history", []))
        best_ssim = resume_state.get("best_ssim")

    forward = model
    if info.enabled:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        forward = compile_model(model, forward, config.model)

    def checkpoint(name: str) -> None:
        if info.is_main:
            save_checkpoint(run_dir / name, {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                "step": step,
                "epoch": epoch,
                "epoch_step": epoch_step,
                "epoch_loss": epoch_loss.clone(),
                "history": history,
                "best_ssim": best_ssim,
                "config": config.to_dict(),
                "model_kind": config.model,
            })

    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False), overwrite=True)

    zf = validate(None, val_files, config.mask_spec, device=device, info=info)
    if show:
        stderr_console.print(f"zero-filled validation: SSIM {zf.ssim:.4f}, PSNR {zf.psnr:.2f} dB over {zf.volumes} "
                             f"volume(s); {len(train_set)} training slices, {steps_per_epoch} steps per epoch "
                             f"on {device} x{info.world}", highlight=False)

    def result(interrupted: bool) -> TrainResult:
        return TrainResult(run_dir, step, epoch, history, best_ssim, zf, interrupted, model,
                           stop_signal=(stop.signum or signal.SIGINT) if interrupted else None)

    stop = _StopRequest()
    clock, cpu_clock = time.perf_counter(), time.process_time()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} slices/s"),
        TimeElapsedColumn(),
    )
    with stop.installed(), Progress(*columns, console=stderr_console, disable=not show) as progress:
        while epoch < config.epochs:
            if _budget_spent(config, step, clock, cpu_clock):
                checkpoint("last.pt")
                return result(False)
            task = progress.add_task(f"epoch {epoch + 1}/{config.epochs}", total=steps_per_epoch,
                                     completed=epoch_step, loss="-", rate="-")
            sampler.set_epoch(epoch, skip=epoch_step * config.batch_size)
            model.train()
            started, seen = time.perf_counter(), 0
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            batches = iter(loader) if epoch_step < steps_per_epoch else iter(())
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except RuntimeError:
                    if stop.requested:  # a worker died of the same Ctrl-C
                        break
                    raise
                if on_device:
                    batch = device_batch(batch, device)
                output, target = model_outputs(forward, batch, device, config.model, config.amp, channels_last)
                loss = loss_fn(output, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                epoch_step += 1
                loss_sum += loss.detach().double() * output.shape[0]
                seen += output.shape[0]
                if on_step is not None:
                    on_step(step)
                if show:
                    fields = {}
                    if (device.type == "cpu" and not info.enabled) or epoch_step % 20 == 0:  # .item() syncs
                        rate = seen * info.world / max(time.perf_counter() - started, 1e-9)
                        fields = {"loss": f"{loss.item():.4f}", "rate": f"{rate:.1f}"}
                    progress.update(task, advance=1, **fields)
                stop_check = not info.enabled or step % STOP_CHECK_STEPS == 0  # the same steps on every rank
                if (stop_check and _should_stop(stop.requested, info, device)) or _budget_spent(config, step, clock, cpu_clock):
                    break
            epoch_loss += torch.tensor([loss_sum.item(), seen], dtype=torch.float64)
            if _should_stop(stop.requested, info, device) or epoch_step < steps_per_epoch:
                checkpoint("last.pt")
                if show and stop.requested:
                    stderr_console.print(f"stopped at step {step}; saved {run_dir / 'last.pt'} (use --resume)")
                return result(stop.requested)

            train_loss = all_reduce_sum(epoch_loss.clone().to(device), info).cpu()
            val = validate(model, val_files, config.mask_spec, device=device, info=info,
                           batch_size=config.val_batch_size, amp=config.amp, channels_last=channels_last)
            record = {"epoch": epoch + 1, "step": step, "train_loss": train_loss[0].item() / max(train_loss[1].item(), 1),
                      **val.as_dict(), "val_zf_ssim": zf.ssim, "lr": optimizer.param_groups[0]["lr"]}
            history.append(record)
            epoch, epoch_step = epoch + 1, 0
            epoch_loss = torch.zeros(2, dtype=torch.float64)
            improved = best_ssim is None or val.ssim > best_ssim
            if improved:
                best_ssim = val.ssim
                checkpoint("best.pt")
            checkpoint("last.pt")
            if info.is_main:
                write_run_files(run_dir, history, "VarNet" if config.model == "varnet" else "U-Net")
            if show:
                progress.console.print(
                    f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, val loss {val.loss:.4f}, "
                    f"val SSIM {val.ssim:.4f} (zero-filled {zf.ssim:.4f}), PSNR {val.psnr:.2f} dB"
                    + (" (best so far)" if improved else ""), highlight=False)
            barrier(info)
    return result(False)


def compile_model(model: torch.nn.Module, forward: torch.nn.Module, kind: str) -> torch.nn.Module:
    """``torch.compile`` for training. The U-Net compiles whole. The VarNet's complex k-space
    steps (FFTs, coil sums) break inductor's backward (a complex-as-real view of a strided
    gradient), so only its real-valued U-Nets are compiled, in place: the state dict keeps its
    keys, and checkpoints load into an uncompiled model."""
    if kind != "varnet":
        return torch.compile(forward)
    from mrirecon.models.unet import Unet

    for module in model.modules():
        if isinstance(module, Unet):
            module.compile()
    return forward


def _budget_spent(config: TrainConfig, step: int, clock: float, cpu_clock: float) -> bool:
    """Whether ``max_steps``, the wall-clock ``max_minutes`` or the ``max_cpu_minutes`` of this
    session is used up. The time budgets are for benchmarks: they make a run depend on the
    machine's speed; ``max_cpu_minutes`` (``time.process_time``: every thread of this process,
    not DataLoader workers) does not depend on how loaded the machine is."""
    if config.max_steps is not None and step >= config.max_steps:
        return True
    if config.max_cpu_minutes is not None and time.process_time() - cpu_clock >= 60.0 * config.max_cpu_minutes:
        return True
    return config.max_minutes is not None and time.perf_counter() - clock >= 60.0 * config.max_minutes


def _should_stop(requested: bool, info: DistInfo, device: torch.device) -> bool:
    """Whether any rank was asked to stop (all ranks must stop at the same step)."""
    if not info.enabled:
        return requested
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    return bool(all_reduce_sum(flag, info).item() > 0)
