"""``train``: resolve the configuration (preset, options, or the run being resumed) and train."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mrirecon.io import InputError
from mrirecon.pipelines.common import stderr_console
from mrirecon.train.checkpoint import checkpoint_config, load_checkpoint
from mrirecon.train.config import RESUMABLE_OVERRIDES, TrainConfig, resolve_config
from mrirecon.train.loop import TrainResult, train


#: What a run writes into its folder.
RUN_FILES = ("last.pt", "best.pt", "config.yaml", "metrics.jsonl", "curves.png")


def resume_config(run_dir: Path, overrides: Mapping[str, Any], quiet: bool = False) -> tuple[TrainConfig, dict]:
    """The stored configuration of ``run_dir/last.pt``, with the options a resumed run may change."""
    path = run_dir / "last.pt"
    state = load_checkpoint(path)
    config = checkpoint_config(state, path)
    ignored = []
    for key, value in overrides.items():
        if value is None or key in ("run_dir",):
            continue
        if key in RESUMABLE_OVERRIDES:
            setattr(config, key, value)
        elif value != getattr(config, key, value):
            ignored.append(key)
    if ignored and not quiet:
        stderr_console.print(
            f"[yellow]warning[/yellow] resuming {run_dir}: ignoring --{', --'.join(k.replace('_', '-') for k in ignored)} "
            "(a resumed run keeps its model, data and optimiser settings)", highlight=False)
    config.run_dir = str(run_dir)
    config.validate()
    return config, state


def completion(config: TrainConfig, state: Mapping[str, Any]) -> str | None:
    """Why the checkpointed run ``state`` has nothing left to do under ``config``, or ``None``."""
    step, epoch, epoch_step = int(state["step"]), int(state["epoch"]), int(state["epoch_step"])
    if config.max_steps is not None and step >= config.max_steps:
        return f"{step} of --max-steps {config.max_steps} steps; pass a larger --max-steps to continue"
    if epoch >= config.epochs and epoch_step == 0:
        return f"{epoch} of {config.epochs} epochs; pass --epochs with more than {epoch} to continue"
    return None


def finished_result(run_dir: Path, state: Mapping[str, Any]) -> TrainResult:
    """The ``TrainResult`` of a complete run, read from its checkpoint (no model is built)."""
    history = list(state.get("history", []))
    return TrainResult(run_dir, int(state["step"]), int(state["epoch"]), history, state.get("best_ssim"),
                       None, False, None)


def run_training(
    config_file: str | Path | None,
    overrides: Mapping[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
) -> TrainResult:
    """Train as the preset and options say; with ``resume`` continue ``run_dir/last.pt``.

    A fresh run refuses a ``run_dir`` that already holds a run's files, unless ``overwrite``
    (then those files are removed first).
    Resuming a run that is already complete says so and writes nothing.
    """
    run_dir = Path(overrides["run_dir"])
    if resume:
        config, state = resume_config(run_dir, overrides, quiet)
        done = completion(config, state)
        if done is not None:
            if not quiet:
                stderr_console.print(f"{run_dir} is complete ({done}); nothing to do", highlight=False)
            return finished_result(run_dir, state)
        return train(config, resume_state=state, quiet=quiet)
    existing = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    if existing and not overwrite:
        raise InputError(run_dir, "already holds a training run; pass --resume to continue it, --overwrite to "
                                  "start again, or choose another folder")
    config = resolve_config(config_file, overrides)
    if not config.train_dir or not config.val_dir:
        raise ValueError("both --train and --val folders are needed (on the command line or in the config)")
    for path in existing:  # a fresh run must not leave the old run's best.pt or curves beside its own
        path.unlink()
    return train(config, quiet=quiet)
