"""ISMRMRD files written by the ``ismrmrd`` package itself, from the real ``.npy`` scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_ismrmrd(
    path: Path,
    kspace: np.ndarray,
    *,
    noise: np.ndarray | None = None,
    pad: int = 0,
    recon_fov_mm: tuple[float, float, float] = (240.0, 240.0, 5.0),
    image_dwell_us: float = 5.0,
    noise_dwell_us: float = 5.0,
    noise_readout: int = 256,
) -> None:
    """Write ``kspace`` ``(S, C, H, W)`` as an ISMRMRD file, one acquisition per line and slice.

    ``pad`` columns on each side are declared as zero padding: the encoded matrix is ``W + 2 pad``
    wide, the lines carry encode step 1 from 0, and ``encodingLimits`` put the centre at
    ``W / 2``. ``noise`` ``(C, N)`` goes first as noise acquisitions of ``noise_readout`` samples.
    """
    import ismrmrd
    from ismrmrd import xsd

    slices, coils, height, width = kspace.shape
    ey = width + 2 * pad
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=123_000_000),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            systemVendor="GE", systemFieldStrength_T=3.0, receiverChannels=coils
        ),
        encoding=[
            xsd.encodingType(
                trajectory=xsd.trajectoryType.CARTESIAN,
                encodedSpace=xsd.encodingSpaceType(
                    matrixSize=xsd.matrixSizeType(x=height, y=ey, z=1),
                    fieldOfView_mm=xsd.fieldOfViewMm(x=recon_fov_mm[0], y=recon_fov_mm[1] * ey / max(width, 1), z=recon_fov_mm[2]),
                ),
                reconSpace=xsd.encodingSpaceType(
                    matrixSize=xsd.matrixSizeType(x=height, y=width, z=1),
                    fieldOfView_mm=xsd.fieldOfViewMm(x=recon_fov_mm[0], y=recon_fov_mm[1], z=recon_fov_mm[2]),
                ),
                encodingLimits=xsd.encodingLimitsType(
                    kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=width - 1, center=width // 2),
                    slice=xsd.limitType(minimum=0, maximum=slices - 1, center=0),
                ),
            )
        ],
    )
    acquisitions = []
    if noise is not None:
        for start in range(0, noise.shape[1] - noise_readout + 1, noise_readout):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(noise[:, start : start + noise_readout]))
            acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            acq.sample_time_us = noise_dwell_us
            acquisitions.append(acq)
    for s in range(slices):
        position = (0.0, 0.0, recon_fov_mm[2] * (s - (slices - 1) / 2))
        for line in range(width):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[s, :, :, line]))
            acq.idx.kspace_encode_step_1 = line
            acq.idx.slice = s
            acq.center_sample = height // 2
            acq.sample_time_us = image_dwell_us
            acq.position[:] = position
            acq.read_dir[:] = (1.0, 0.0, 0.0)
            acq.phase_dir[:] = (0.0, 1.0, 0.0)
            acq.slice_dir[:] = (0.0, 0.0, 1.0)
            acquisitions.append(acq)
    with ismrmrd.File(str(path), "w") as handle:
        container = handle["dataset"]
        container.header = header
        container.acquisitions = acquisitions
