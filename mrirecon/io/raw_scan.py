"""A raw Cartesian scan read from a scanner format, before it becomes a fastMRI file.

Every reader (twix, ISMRMRD, .cfl, .npy) returns a ``RawScan``: k-space in fastMRI's axis order
plus what the source said about it (oversampling, sampled columns, field of view, geometry,
noise). ``ismrmrd_header_xml`` turns it into the real ISMRMRD header a fastMRI file carries,
through the ``ismrmrd`` package's own schema classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Where the slices are, in the scanner's patient coordinates (millimetres).

    ``positions``: ``(S, 3)`` slice centres; ``read_dir``, ``phase_dir``, ``slice_dir``: unit
    vectors of the image rows (readout), columns (phase encode) and slice normal.
    """

    positions: tuple[tuple[float, float, float], ...]
    read_dir: tuple[float, float, float]
    phase_dir: tuple[float, float, float]
    slice_dir: tuple[float, float, float]

    def to_json(self) -> str:
        return json.dumps(
            {
                "positions": [list(p) for p in self.positions],
                "read_dir": list(self.read_dir),
                "phase_dir": list(self.phase_dir),
                "slice_dir": list(self.slice_dir),
            }
        )

    @staticmethod
    def from_json(text: str) -> "Geometry":
        data = json.loads(text)
        return Geometry(
            tuple(tuple(float(v) for v in p) for p in data["positions"]),
            tuple(float(v) for v in data["read_dir"]),  # type: ignore[arg-type]
            tuple(float(v) for v in data["phase_dir"]),  # type: ignore[arg-type]
            tuple(float(v) for v in data["slice_dir"]),  # type: ignore[arg-type]
        )


@dataclass
class RawScan:
    """Fully sampled Cartesian k-space from a scanner file, in fastMRI's axis order.

    ``kspace``: ``(S, C, H, W)`` complex64 (H the readout, W the phase encode), or
    ``(S, H, W)`` single-coil. ``sampled_cols``: ``(first, stop)`` of the acquired columns (the
    rest is zero padding). ``recon_fov_mm``: the reconstructed field of view (readout, phase,
    slice thickness) if the source states it. ``noise``: ``(C, N)`` noise-only samples, if any;
    ``noise_dwell_ratio``: the noise scan's dwell time over the image's (the bandwidth ratio
    used to scale the whitening), when both are known. ``sequence``: ``TR``/``TE`` (ms) and
    ``flip_angle`` (degrees) when stated; ``header_xml``: the source's own ISMRMRD header, kept
    verbatim when the k-space layout is the one it describes.
    """

    kspace: np.ndarray
    source_format: str
    readout_oversampling: int = 1
    sampled_cols: tuple[int, int] | None = None
    recon_size: tuple[int, int] | None = None
    recon_fov_mm: tuple[float, float, float] | None = None
    geometry: Geometry | None = None
    noise: np.ndarray | None = None
    noise_dwell_ratio: float | None = None
    system: dict[str, str | float] = field(default_factory=dict)
    sequence: dict[str, float] = field(default_factory=dict)
    header_xml: bytes | None = None
    attrs: dict[str, object] = field(default_factory=dict)

    @property
    def multicoil(self) -> bool:
        return self.kspace.ndim == 4

    @property
    def num_coils(self) -> int:
        return self.kspace.shape[1] if self.multicoil else 1


def ismrmrd_header_xml(
    encoded_size: tuple[int, int],
    recon_size: tuple[int, int],
    sampled_cols: tuple[int, int],
    num_slices: int,
    recon_fov_mm: tuple[float, float, float] | None,
    readout_oversampling: int,
    system: dict[str, str | float] | None = None,
    sequence: dict[str, float] | None = None,
) -> bytes:
    """The ISMRMRD XML header of a converted scan, built with the ``ismrmrd`` schema classes.

    ``encodedSpace`` holds the k-space size as stored (oversampled readout, all columns) with its
    field of view (the readout FOV times the oversampling, as fastMRI's headers do);
    ``reconSpace`` the crop and the true FOV. ``encodingLimits`` give the acquired columns so that
    fastMRI's padding formula returns ``sampled_cols``. Without a known FOV, the FOV is written
    as 0 mm (ISMRMRD requires the element) and nothing downstream treats it as geometry.
    """
    from ismrmrd import xsd

    ex, ey = encoded_size
    rx, ry = recon_size
    first, stop = sampled_cols
    fov = recon_fov_mm or (0.0, 0.0, 0.0)
    system = system or {}
    limits = xsd.encodingLimitsType(
        kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=stop - first - 1, center=ey // 2 - first),
        kspace_encoding_step_2=xsd.limitType(minimum=0, maximum=0, center=0),
        slice=xsd.limitType(minimum=0, maximum=max(num_slices - 1, 0), center=0),
    )
    encoding = xsd.encodingType(
        encodedSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=ex, y=ey, z=1),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0] * readout_oversampling, y=fov[1], z=fov[2]),
        ),
        reconSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=rx, y=ry, z=1),
            fieldOfView_mm=xsd.fieldOfViewMm(x=fov[0], y=fov[1], z=fov[2]),
        ),
        encodingLimits=limits,
        trajectory=xsd.trajectoryType.CARTESIAN,
    )
    info = xsd.acquisitionSystemInformationType(
        systemVendor=str(system["vendor"]) if "vendor" in system else None,
        systemModel=str(system["model"]) if "model" in system else None,
        systemFieldStrength_T=float(system["field_strength_t"]) if "field_strength_t" in system else None,
    )
    lamor_hz = int(system["frequency_hz"]) if "frequency_hz" in system else 0
    sequence = sequence or {}
    parameters = None
    if sequence:
        parameters = xsd.sequenceParametersType(
            TR=[sequence["TR"]] if "TR" in sequence else [],
            TE=[sequence["TE"]] if "TE" in sequence else [],
            flipAngle_deg=[sequence["flip_angle"]] if "flip_angle" in sequence else [],
        )
    header = xsd.ismrmrdHeader(
        sequenceParameters=parameters,
        acquisitionSystemInformation=info,
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=lamor_hz),
        encoding=[encoding],
    )
    return xsd.ToXML(header).encode()
