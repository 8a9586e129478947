"""``eval``: score reconstructions against fully sampled targets the way ``fastmri.evaluate`` does.

For each target file ``*.h5`` in the target folder, the prediction of the same name in the
prediction folder is scored (NMSE, PSNR, SSIM after fastMRI's W x W centre crop); means and
2 x sample SD over volumes are what fastMRI prints.

Targets: the dataset fastMRI uses (``reconstruction_rss`` for multi-coil, ``reconstruction_esc``
for single-coil; ``--challenge`` picks it, otherwise the k-space rank does). A fully sampled
file without that dataset gets its target computed from its k-space by zero filling (inverse
FFT, RSS, the header's crop), as ``zf-recon`` would.

Filters: ``acquisition`` matches the target's ``acquisition`` attribute; ``acceleration``
matches the target's ``acceleration`` attribute or, when the target has none (fully sampled
files have none), the prediction's (our reconstruction commands record it). A volume whose
attribute is missing in both does not match.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from rich.table import Table

from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import TARGET_KEYS, open_volume
from mrirecon.io.h5_input import check_bounds, get_dataset, open_h5
from mrirecon.metrics import volume_metrics
from mrirecon.mri.zero_filled import zero_filled
from mrirecon.pipelines.chunk_reader import ChunkReader
from mrirecon.pipelines.common import FileResult, expand_inputs, run_batch
from mrirecon.pipelines.devices import resolve_device
from mrirecon.pipelines.prefetch import Prefetcher
from mrirecon.pipelines.runner import upload  # pinned (a no-op for _host_buffer's arrays), non_blocking

METRICS = ("nmse", "psnr", "ssim")
#: k-space slices turned into a target at a time (bounds memory for multi-coil volumes).
KSPACE_SLICES_PER_CHUNK = 8


@dataclass
class EvalConfig:
    """Which target dataset and volumes to score, where to compute, and regression thresholds."""

    challenge: str | None = None
    acquisition: str | None = None
    acceleration: float | None = None
    device: str = "auto"
    min_ssim: float | None = None
    min_psnr: float | None = None
    max_nmse: float | None = None

    def validate(self) -> None:
        if self.challenge is not None and self.challenge not in TARGET_KEYS:
            raise ValueError(f"--challenge must be singlecoil or multicoil, got {self.challenge!r}")
        if self.acceleration is not None and not self.acceleration > 0:
            raise ValueError(f"--acceleration must be positive, got {self.acceleration}")


@dataclass
class VolumeScore:
    """The metrics of one volume, and where its target came from (a dataset name or ``kspace``)."""

    name: str
    slices: int
    nmse: float
    psnr: float
    ssim: float
    target: str


@dataclass
class EvalSummary:
    """Per-volume scores, their means and 2 x sample SD (fastMRI's "mean +/- 2 SD"), failures,
    volumes the filters left out, and the regression thresholds that were not met."""

    volumes: list[VolumeScore] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    device: str = "cpu"
    seconds: float = 0.0

    @property
    def mean(self) -> dict[str, float | None]:
        return {m: statistics.fmean(getattr(v, m) for v in self.volumes) if self.volumes else None for m in METRICS}

    @property
    def sd2(self) -> dict[str, float | None]:
        """2 x the sample standard deviation (runstats' ``stddev``); None below two volumes."""
        if len(self.volumes) < 2:
            return {m: None for m in METRICS}
        return {m: 2.0 * statistics.stdev(getattr(v, m) for v in self.volumes) for m in METRICS}

    @property
    def ok(self) -> bool:
        return not self.failed and not self.regressions

    def to_dict(self) -> dict[str, Any]:
        return {
            "volumes": {v.name: {m: getattr(v, m) for m in METRICS} for v in self.volumes},
            "mean": self.mean,
            "sd2": self.sd2,
            "failed": self.failed,
            "skipped": self.skipped,
            "regressions": self.regressions,
            "details": [asdict(v) for v in self.volumes],
            "device": self.device,
            "seconds": self.seconds,
        }


def scoring_pairs(target: str | Path, pred: str | Path) -> dict[Path, Path]:
    """Each target file and the prediction it is scored against.

    ``target`` and ``pred`` are folders (each target ``*.h5`` with the prediction of the same
    name), a folder and a file (the file with the file of the same name in the folder), or two
    files. Raises ``InputError`` for a missing path or a target folder without ``*.h5`` files.
    """
    target, pred = Path(target), Path(pred)
    for path, what in ((target, "target"), (pred, "prediction")):
        if not path.exists():
            raise InputError(path, f"{what} file or folder does not exist")
    if target.is_dir():
        if not pred.is_dir():
            if not (target / pred.name).is_file():
                raise InputError(pred, f"has no target of the same name in {target}")
            return {target / pred.name: pred}
        targets = expand_inputs([target])
        if not targets:
            raise InputError(target, "has no *.h5 target files")
        return {t: pred / t.name for t in targets}
    return {target: pred / target.name if pred.is_dir() else pred}


def evaluate(
    target: str | Path,
    pred: str | Path,
    config: EvalConfig,
    quiet: bool = False,
    debug: bool = False,
    label: str = "eval",
    prefetch: bool = True,
) -> EvalSummary:
    """Score the predictions in ``pred`` against the targets in ``target`` (files or folders,
    see ``scoring_pairs``); ``label`` names the progress bar. With ``prefetch`` the next pair
    is read in a background thread while the current one is scored (same results).

    Raises ``InputError`` for a missing path, a folder without ``*.h5`` files, or when the
    filters leave no volume. A volume that cannot be scored (no prediction, bad shapes, ...)
    is recorded in ``failed`` and the others go on.
    """
    start = time.perf_counter()
    config.validate()
    device = resolve_device(config.device)
    pairs = scoring_pairs(target, pred)
    target_dir = Path(target)

    pin = device.type == "cuda"
    # the next pair is read (HDF5, a background thread) while this one is scored
    with Prefetcher(list(pairs), lambda p: _read_pair(p, pairs[p], config, pin), enabled=prefetch) as reader:
        batch = run_batch(
            "eval", list(pairs), lambda p: _score_loaded(reader.get(p), config, device), quiet=quiet, debug=debug,
            description=label,
        )

    summary = EvalSummary(device=str(device))
    for result in batch.results:
        name = Path(result.input).name
        if not result.ok:
            summary.failed.append({"name": name, "error": result.error or "failed"})
        elif "skipped" in result.info:
            summary.skipped.append({"name": name, "reason": result.info["skipped"]})
        else:
            summary.volumes.append(result.info["score"])
    if not summary.volumes and not summary.failed:
        raise InputError(target_dir, f"no volume matches the filters ({summary.skipped[0]['reason']}, ...)")
    summary.regressions = threshold_failures(summary, config)
    summary.seconds = time.perf_counter() - start
    return summary


def threshold_failures(summary: EvalSummary, config: EvalConfig) -> list[str]:
    """One line per mean metric beyond its threshold, e.g. ``mean SSIM 0.712 < --min-ssim 0.8``."""
    if not summary.volumes:
        return []
    mean = summary.mean
    out = []
    if config.min_ssim is not None and not mean["ssim"] >= config.min_ssim:
        out.append(f"mean SSIM {mean['ssim']:.4g} < --min-ssim {config.min_ssim:g}")
    if config.min_psnr is not None and not mean["psnr"] >= config.min_psnr:
        out.append(f"mean PSNR {mean['psnr']:.4g} < --min-psnr {config.min_psnr:g}")
    if config.max_nmse is not None and not mean["nmse"] <= config.max_nmse:
        out.append(f"mean NMSE {mean['nmse']:.4g} > --max-nmse {config.max_nmse:g}")
    return out


# --- one volume -------------------------------------------------------------------------


@dataclass
class _LoadedPair:
    """A target and its prediction read from disk (host arrays, pinned when scoring on CUDA);
    ``gt`` is None when the target is to be computed from the k-space."""

    target_path: Path
    pred_path: Path
    recon: np.ndarray
    gt: np.ndarray | None
    source: str


def _read_pair(target_path: Path, pred_path: Path, config: EvalConfig, pin: bool) -> _LoadedPair | FileResult:
    """Everything ``eval`` reads from one target/prediction pair, or the skip the filters give."""
    with open_h5(target_path) as target:
        attrs = target.attrs
        if config.acquisition is not None:
            acquisition = _text(attrs.get("acquisition"))
            if acquisition != config.acquisition:
                return _skipped(target_path, f"acquisition is {acquisition}, not {config.acquisition}")
        if not pred_path.is_file():
            raise InputError(pred_path, "no prediction for this target (missing file)")
        with open_h5(pred_path) as pred:
            if config.acceleration is not None:
                found = attrs.get("acceleration", pred.attrs.get("acceleration"))
                if found is None:
                    return _skipped(target_path, "no acceleration attribute in the target or the prediction")
                if not math.isclose(float(found), config.acceleration, rel_tol=1e-9):
                    return _skipped(target_path, f"acceleration is {float(found):g}, not {config.acceleration:g}")
            recon = _read_prediction(pred, pred_path, pin)
        key = _target_key(target, target_path, config.challenge)
        if key not in target and "kspace" not in target:
            raise InputError(target_path, f"has no '{key}' dataset and no k-space to compute a target from")
        gt = _read_float_volume(target, key, target_path, pin) if key in target else None
    return _LoadedPair(target_path, pred_path, recon, gt, key if gt is not None else "kspace")


def _score_loaded(loaded: _LoadedPair | FileResult, config: EvalConfig, device: torch.device) -> FileResult:
    """Score one pair read by ``_read_pair`` on ``device``."""
    if isinstance(loaded, FileResult):  # skipped by a filter
        return loaded
    target_path, pred_path, recon = loaded.target_path, loaded.pred_path, loaded.recon
    if loaded.gt is None:
        gt_tensor = _target_from_kspace(target_path, config.challenge, device)
    else:
        gt_tensor = upload(loaded.gt, device)
    if gt_tensor.shape[0] != recon.shape[0]:
        raise InputError(
            pred_path, f"has {recon.shape[0]} slices but the target {target_path.name} has {gt_tensor.shape[0]}"
        )
    width = gt_tensor.shape[-1]
    if recon.shape[-2] < width or recon.shape[-1] < width:  # the prediction's fault: name it
        raise InputError(
            pred_path, f"is {recon.shape[-2]}x{recon.shape[-1]}, smaller than the {width}x{width} crop of its target {target_path.name}"
        )
    host = (loaded.gt, recon) if loaded.gt is not None else None  # fastMRI's float32 NMSE, no copy back
    scores = volume_metrics(gt_tensor, upload(recon, device), host=host)
    if not all(math.isfinite(scores[m]) or (m == "psnr" and scores[m] == math.inf) for m in METRICS):
        raise InputError(pred_path, "gives non-finite metrics: the prediction or target has NaN or Inf values")
    score = VolumeScore(target_path.name, int(recon.shape[0]), scores["nmse"], scores["psnr"], scores["ssim"], loaded.source)
    return FileResult(str(target_path), output=str(pred_path), info={"score": score})


def _host_buffer(shape: tuple[int, ...], dtype: np.dtype, pin: bool) -> np.ndarray:
    """An empty host array, in page-locked memory when ``pin`` (and torch has the dtype)."""
    if pin:
        try:
            torch_dtype = torch.from_numpy(np.empty(0, dtype)).dtype
        except TypeError:
            torch_dtype = None
        if torch_dtype is not None:
            return torch.empty(shape, dtype=torch_dtype, pin_memory=True).numpy()
    return np.empty(shape, dtype)


def _skipped(path: Path, reason: str) -> FileResult:
    return FileResult(str(path), info={"skipped": reason})


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return None if value is None else str(value)


def _target_key(target: h5py.File, path: Path, challenge: str | None) -> str:
    """The dataset fastMRI scores against: the challenge's, else the one the k-space rank implies."""
    if challenge is not None:
        return TARGET_KEYS[challenge]
    kspace = get_dataset(target, "kspace", path)  # a group, an external link... are one sentence
    if kspace is not None:
        return TARGET_KEYS["multicoil" if kspace.ndim == 4 else "singlecoil"]
    present = [key for key in TARGET_KEYS.values() if key in target]
    if len(present) == 1:
        return present[0]
    if not present:
        raise InputError(path, "has neither a 'kspace' nor a 'reconstruction_rss'/'reconstruction_esc' dataset")
    raise InputError(path, "has both target datasets and no k-space to choose between them; pass --challenge")


def _read_float_volume(handle: h5py.File, key: str, path: Path, pin: bool = False) -> np.ndarray:
    """A ``(slices, H, W)`` float dataset read whole, in its own dtype (into pinned memory
    with ``pin``)."""
    dataset = get_dataset(handle, key, path)
    if dataset is None or dataset.ndim != 3 or dataset.dtype.kind != "f":
        shape = getattr(dataset, "shape", None)
        raise InputError(path, f"'{key}' is not a float (slices, H, W) dataset (shape {shape})")
    check_bounds(tuple(dataset.shape), key, path, "SHW")
    if not pin or dataset.size == 0:
        return dataset[()]
    out = _host_buffer(tuple(dataset.shape), dataset.dtype, pin)
    dataset.read_direct(out)
    return out


def _read_prediction(handle: h5py.File, path: Path, pin: bool = False) -> np.ndarray:
    if "reconstruction" not in handle:
        raise InputError(path, "has no 'reconstruction' dataset")
    return _read_float_volume(handle, "reconstruction", path, pin)


def _target_from_kspace(path: Path, challenge: str | None, device: torch.device) -> torch.Tensor:
    """The zero-filled image of fully sampled k-space: what ``reconstruction_rss``/``_esc`` hold."""
    with open_volume(path) as volume:
        if challenge is not None and volume.challenge != challenge:
            raise InputError(
                path, f"has no '{TARGET_KEYS[challenge]}' dataset and its k-space is {volume.challenge}"
            )
        if volume.is_undersampled:
            raise InputError(path, "has no target dataset and its k-space is undersampled (it has a 'mask')")
        chunks = []
        # reused (pinned on CUDA) buffers, the next chunk read while this one is transformed
        with ChunkReader(volume, device) as reader:
            for start in range(0, volume.num_slices, KSPACE_SLICES_PER_CHUNK):
                stop = min(start + KSPACE_SLICES_PER_CHUNK, volume.num_slices)
                chunks.append(zero_filled(reader.read(start, stop), volume.recon_crop))
    return torch.cat(chunks)


def summary_table(summary: EvalSummary) -> Table:
    """One row per volume (name, slices, NMSE, PSNR, SSIM) and a last row "mean ± 2 SD"."""
    table = Table(title=f"eval: {len(summary.volumes)} volume(s) on {summary.device}")
    table.add_column("volume", overflow="fold")
    table.add_column("slices", justify="right")
    for title in ("NMSE", "PSNR", "SSIM"):
        table.add_column(title, justify="right")
    for i, v in enumerate(summary.volumes):
        last = i == len(summary.volumes) - 1
        table.add_row(v.name, str(v.slices), f"{v.nmse:.4g}", f"{v.psnr:.2f}", f"{v.ssim:.4f}", end_section=last)
    if summary.volumes:
        mean, sd2 = summary.mean, summary.sd2
        formats = {"nmse": "{:.4g}", "psnr": "{:.2f}", "ssim": "{:.4f}"}
        cells = []
        for m in METRICS:
            text = formats[m].format(mean[m])
            cells.append(text if sd2[m] is None else f"{text} ± {formats[m].format(sd2[m])}")
        slices = str(sum(v.slices for v in summary.volumes))
        table.add_row("[bold]mean ± 2 SD[/bold]", slices, *cells)
    return table


def load_target_volume(path: str | Path, challenge: str | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """The target ``eval`` scores against for the file at ``path`` (its target dataset, or the
    zero-filled image of its fully sampled k-space), uncropped, on ``device``."""
    path = Path(path)
    with open_h5(path) as target:
        key = _target_key(target, path, challenge)
        if key in target:
            return torch.from_numpy(_read_float_volume(target, key, path)).to(device)
    return _target_from_kspace(path, challenge, torch.device(device))
