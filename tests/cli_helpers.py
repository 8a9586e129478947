"""Running the CLI in-process, with stdout and stderr apart."""

from __future__ import annotations

from typer.testing import CliRunner

from mrirecon.cli import app


def run_cli(*args: object):
    """Invoke ``mrirecon ARGS``; returns click's Result (``exit_code``, ``stdout``, ``stderr``)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def ssim_against_target(source, recon_dir) -> float:
    """fastMRI's volume SSIM of the reconstruction of ``source`` in ``recon_dir`` against ``source``'s target."""
    from pathlib import Path

    from mrirecon.io import open_volume, read_reconstruction
    from mrirecon.metrics import volume_metrics

    with open_volume(source) as volume:
        target = volume.read_target()
    return volume_metrics(target, read_reconstruction(Path(recon_dir) / Path(source).name))["ssim"]
