"""``compare``: several reconstructions of the same volumes scored side by side, and a figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from mrirecon.io.atomic import atomic_path
from mrirecon.io.errors import InputError
from mrirecon.io.fastmri_h5 import read_reconstruction
from mrirecon.metrics import ssim
from mrirecon.mri.crop import center_crop
from mrirecon.pipelines.evaluate import METRICS, EvalConfig, EvalSummary, evaluate, load_target_volume, scoring_pairs


@dataclass
class ComparisonSummary:
    """One ``EvalSummary`` per method, in the order given."""

    methods: dict[str, EvalSummary] = field(default_factory=dict)
    figure: str | None = None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.methods.values())

    @property
    def volume_sets(self) -> dict[str, frozenset[str]]:
        """The names of the volumes each method was scored on."""
        return {name: frozenset(v.name for v in s.volumes) for name, s in self.methods.items()}

    @property
    def same_volumes(self) -> bool:
        return len(set(self.volume_sets.values())) <= 1

    def warning(self) -> str | None:
        """A sentence when the methods' means are over different volumes (so not comparable)."""
        if self.same_volumes:
            return None
        counts = ", ".join(f"{name}: {len(vols)}" for name, vols in self.volume_sets.items())
        return (f"the methods were scored on different volumes ({counts} volume(s)); "
                "their means are not directly comparable")

    @property
    def summary_line(self) -> str:
        """``compare: 3 method(s) x 4 volume(s) scored, 0 failed``."""
        scored = max((len(s.volumes) for s in self.methods.values()), default=0)
        failed = sum(len(s.failed) for s in self.methods.values())
        return f"compare: {len(self.methods)} method(s) x {scored} volume(s) scored, {failed} failed"

    def to_dict(self) -> dict[str, Any]:
        return {"methods": {name: s.to_dict() for name, s in self.methods.items()}, "figure": self.figure,
                "same_volumes": self.same_volumes, "warning": self.warning()}


def parse_method(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` (or just ``PATH``, named after it); PATH is a folder or a file."""
    name, sep, folder = text.partition("=")
    if not sep:
        return Path(text).stem, Path(text)
    if not name or not folder:
        raise ValueError(f"--pred must look like NAME=PATH, got {text!r}")
    return name, Path(folder)


def compare(
    target_dir: str | Path,
    methods: list[tuple[str, Path]],
    config: EvalConfig,
    png: str | Path | None = None,
    quiet: bool = False,
    debug: bool = False,
) -> ComparisonSummary:
    """Score each method's predictions (a folder or a file) against ``target_dir`` (a folder or a
    file), as ``eval`` does, one progress bar per method; optionally draw a figure."""
    if not methods:
        raise ValueError("give at least one --pred NAME=PATH")
    names = [name for name, _ in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names must be distinct, got {', '.join(names)}")
    for _, path in methods:  # every path checked before any scoring starts
        scoring_pairs(target_dir, path)
    summary = ComparisonSummary()
    for name, path in methods:
        summary.methods[name] = evaluate(target_dir, path, config, quiet=quiet, debug=debug, label=name)
    if png is not None:
        summary.figure = str(draw_comparison(Path(target_dir), methods, summary, Path(png), config.challenge))
    return summary


def comparison_table(summary: ComparisonSummary) -> Table:
    """One row per method: mean ± 2 SD of NMSE, PSNR and SSIM over the volumes."""
    any_summary = next(iter(summary.methods.values()))
    if summary.same_volumes:
        title = f"{len(any_summary.volumes)} volume(s), fastMRI metrics (mean ± 2 SD)"
    else:
        title = "fastMRI metrics (mean ± 2 SD) over DIFFERENT volume sets: not directly comparable"
    table = Table(title=title)
    table.add_column("method")
    table.add_column("volumes", justify="right")
    for title in ("NMSE", "PSNR", "SSIM"):
        table.add_column(title, justify="right")
    formats = {"nmse": "{:.4f}", "psnr": "{:.2f}", "ssim": "{:.4f}"}
    for name, s in summary.methods.items():
        cells = []
        for m in METRICS:
            mean, sd2 = s.mean[m], s.sd2[m]
            if mean is None:
                cells.append("-")
                continue
            text = formats[m].format(mean)
            cells.append(text if sd2 is None else f"{text} ± {formats[m].format(sd2)}")
        table.add_row(name, str(len(s.volumes)), *cells)
    return table


def draw_comparison(
    target_dir: Path,
    methods: list[tuple[str, Path]],
    summary: ComparisonSummary,
    png: Path,
    challenge: str | None = None,
) -> Path:
    """A PNG: the target and each reconstruction of the middle slice of the first scored volume
    (top row), their absolute errors (bottom row, x5), the volume SSIM in each caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(summary.methods.values()))
    if not first.volumes:
        raise InputError(target_dir, "no scored volume to draw")
    volume = first.volumes[0].name
    target_path = target_dir if target_dir.is_file() else target_dir / volume
    target = load_target_volume(target_path, challenge).numpy()
    width = target.shape[-1]
    target = center_crop(target, (width, width))
    index = target.shape[0] // 2
    vmax = float(target.max())
    columns = [("target", target[index], None)]
    for name, path in methods:
        recon = center_crop(read_reconstruction(scoring_pairs(target_path, path)[target_path]), (width, width))
        score = ssim(target[index : index + 1], recon[index : index + 1], data_range=vmax)
        vol_score = next((v.ssim for v in summary.methods[name].volumes if v.name == volume), float("nan"))
        columns.append((f"{name}\nSSIM {vol_score:.3f} (slice {score:.3f})", recon[index], recon[index] - target[index]))
    fig, axes = plt.subplots(2, len(columns), figsize=(3 * len(columns), 6.4), squeeze=False)
    for col, (title, image, error) in enumerate(columns):
        axes[0, col].imshow(image, cmap="gray", vmin=0, vmax=vmax)
        axes[0, col].set_title(title, fontsize=9)
        if error is not None:
            axes[1, col].imshow(np.abs(error), cmap="inferno", vmin=0, vmax=vmax / 5)
            axes[1, col].set_title("|error| x5", fontsize=9)
        for row in range(2):
            axes[row, col].axis("off")
    fig.suptitle(f"{volume}, slice {index}", fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(png, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return png
