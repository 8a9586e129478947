"""``sample-data``: write a set of generated fastMRI train/val-style volumes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mrirecon.io.errors import OutputExistsError
from mrirecon.io.fastmri_h5 import write_volume
from mrirecon.pipelines.common import BatchSummary, FileResult, run_batch
from mrirecon.pipelines.devices import resolve_device
from mrirecon.sampledata.volume import PRESETS, make_volume

CHALLENGES = ("multicoil", "singlecoil")


@dataclass
class SampleDataConfig:
    """What to generate. ``slices``/``coils`` of ``None`` take the preset's defaults
    (small: 8 slices, 8 coils; knee: 35 slices, 15 coils)."""

    challenge: str = "multicoil"
    preset: str = "small"
    volumes: int = 4
    slices: int | None = None
    coils: int | None = None
    seed: int = 0
    device: str = "cpu"

    @property
    def num_slices(self) -> int:
        return PRESETS[self.preset].slices if self.slices is None else self.slices

    @property
    def num_coils(self) -> int:
        return PRESETS[self.preset].coils if self.coils is None else self.coils

    def validate(self) -> None:
        """Raise ``ValueError`` (one sentence, naming the option) if the config is unusable."""
        if self.challenge not in CHALLENGES:
            raise ValueError(f"--challenge must be one of {', '.join(CHALLENGES)}, got {self.challenge!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        for option, value in (("--volumes", self.volumes), ("--slices", self.num_slices), ("--coils", self.num_coils)):
            if value < 1:
                raise ValueError(f"{option} must be at least 1, got {value}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed must be between 0 and 2**63 - 1, got {self.seed}")
        resolve_device(self.device)

    def file_name(self, index: int) -> str:
        """fastMRI-like file name of volume ``index``."""
        return f"sample_{self.challenge}_{self.seed}_{index:03d}.h5"


def generate_sample_data(
    out_dir: Path, config: SampleDataConfig, quiet: bool = False, overwrite: bool = False
) -> BatchSummary:
    """Generate ``config.volumes`` volumes into ``out_dir``; the same config gives the same bytes.

    Refuses (``OutputExistsError``, before writing anything) if a file exists and not ``overwrite``.
    """
    config.validate()
    device = resolve_device(config.device)
    out_dir = Path(out_dir)
    paths = [out_dir / config.file_name(i) for i in range(config.volumes)]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(existing[0])
    index_of = {path: i for i, path in enumerate(paths)}
    preset = PRESETS[config.preset]

    def generate(path: Path) -> FileResult:
        index = index_of[path]
        volume = make_volume(config.challenge, preset, config.num_slices, config.num_coils, config.seed, index, device)
        write_volume(
            path,
            volume.kspace,
            header_xml=volume.header_xml,
            attrs=volume.attrs,
            targets={volume.target_key: volume.target},
            overwrite=overwrite,
        )
        label = f"{config.challenge} {config.preset} seed {config.seed} volume {index}"
        return FileResult(label, output=str(path), info=volume.info)

    start = time.perf_counter()
    summary = run_batch("sample-data", paths, generate, quiet=quiet, description="sample-data")
    summary.extra["config"] = asdict(config) | {"slices": config.num_slices, "coils": config.num_coils}
    summary.extra["seconds"] = round(time.perf_counter() - start, 3)
    return summary
