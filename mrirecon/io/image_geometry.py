"""What is known about where a reconstruction's pixels are: spacing, and maybe orientation.

Sources, in order: the ``geometry`` attribute ``convert`` writes (slice centres and directions,
patient coordinates LPS in mm, as DICOM and Siemens/ISMRMRD use) and the ISMRMRD header's
``reconSpace`` field of view. fastMRI's own files carry neither a FOV worth trusting nor slice
positions, so everything here is optional and nothing is invented.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as etree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrirecon.io.h5_input import open_h5, read_dataset
from mrirecon.io.header import ISMRMRD_NS
from mrirecon.io.raw_scan import Geometry


@dataclass(frozen=True)
class ImageGeometry:
    """Pixel spacing ``(row, column)`` mm (rows run along the readout), slice thickness and,
    when known, the slice centres and the row/column/slice directions (LPS)."""

    spacing: tuple[float, float] | None = None
    thickness: float | None = None
    placement: Geometry | None = None

    @property
    def known(self) -> bool:
        return self.spacing is not None

    def to_json(self) -> str:
        """The ``geometry`` attribute: spacing, thickness and, when known, slice placement."""
        data: dict = {"spacing_mm": list(self.spacing) if self.spacing else None, "thickness_mm": self.thickness}
        if self.placement is not None:
            data.update(json.loads(self.placement.to_json()))
        return json.dumps(data)

    @staticmethod
    def from_json(text: str) -> "ImageGeometry":
        data = json.loads(text)
        spacing = data.get("spacing_mm")
        placement = Geometry.from_json(text) if "positions" in data else None
        return ImageGeometry(
            spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
            thickness=float(data["thickness_mm"]) if data.get("thickness_mm") else None,
            placement=placement,
        )

    @staticmethod
    def from_fov(
        fov_mm: tuple[float, float, float] | None, recon_size: tuple[int, int], placement: Geometry | None
    ) -> "ImageGeometry":
        """Spacing = recon FOV / recon matrix; nothing when the FOV is unknown or zero."""
        if fov_mm is None or fov_mm[0] <= 0 or fov_mm[1] <= 0:
            return ImageGeometry()
        spacing = (fov_mm[0] / recon_size[0], fov_mm[1] / recon_size[1])
        return ImageGeometry(spacing, fov_mm[2] if fov_mm[2] > 0 else None, placement)

    def slice_spacing(self) -> float | None:
        """Distance between consecutive slice centres, else the thickness."""
        if self.placement is not None and len(self.placement.positions) > 1:
            pos = np.asarray(self.placement.positions)
            return float(np.linalg.norm(pos[1] - pos[0]))
        return self.thickness

    def corner(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        """Patient position (LPS) of pixel ``[0, 0]`` of slice ``index`` (``shape`` = rows, columns):
        the slice centre is pixel ``[rows // 2, cols // 2]``, as the centred FFT puts it."""
        assert self.placement is not None and self.spacing is not None
        centre = np.asarray(self.placement.positions[index], dtype=float)
        rows, cols = shape
        read = np.asarray(self.placement.read_dir) * self.spacing[0]
        phase = np.asarray(self.placement.phase_dir) * self.spacing[1]
        return centre - read * (rows // 2) - phase * (cols // 2)

    def affine_ras(self, shape: tuple[int, int]) -> np.ndarray | None:
        """NIfTI affine (RAS) of a volume stored as ``[row, column, slice]``, or ``None`` if unknown.

        Without slice positions the axes are taken as the identity directions with the known
        spacing (the FOV is known, the orientation is not)."""
        if self.spacing is None:
            return None
        dz = self.slice_spacing() or 1.0
        affine = np.eye(4)
        if self.placement is None:
            affine[:3, :3] = np.diag([self.spacing[0], self.spacing[1], dz])
            return affine
        lps_to_ras = np.diag([-1.0, -1.0, 1.0])
        affine[:3, 0] = lps_to_ras @ (np.asarray(self.placement.read_dir) * self.spacing[0])
        affine[:3, 1] = lps_to_ras @ (np.asarray(self.placement.phase_dir) * self.spacing[1])
        slice_dir = np.asarray(self.placement.slice_dir)
        if len(self.placement.positions) > 1:  # the order the slices are stored in
            step = np.asarray(self.placement.positions[1]) - np.asarray(self.placement.positions[0])
            slice_dir = step / max(np.linalg.norm(step), 1e-9)
        affine[:3, 2] = lps_to_ras @ (slice_dir * dz)
        affine[:3, 3] = lps_to_ras @ self.corner(0, shape)
        return affine


def _fov_and_matrix(header_xml: bytes) -> tuple[tuple[float, float, float], tuple[int, int]] | None:
    try:
        root = etree.fromstring(header_xml)
    except etree.ParseError:
        return None
    ns = {"m": ISMRMRD_NS}
    recon = root.find("./m:encoding/m:reconSpace", ns)
    if recon is None:
        return None
    try:
        fov = tuple(float(recon.find(f"m:fieldOfView_mm/m:{a}", ns).text) for a in "xyz")  # type: ignore[union-attr]
        matrix = tuple(int(recon.find(f"m:matrixSize/m:{a}", ns).text) for a in "xy")  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return None
    return fov, matrix  # type: ignore[return-value]


def geometry_from_file(path: Path) -> ImageGeometry:
    """The geometry a fastMRI or reconstruction file states: its ``geometry`` attribute (written by
    ``convert``, carried into recon files), else its header's recon FOV over the recon matrix."""
    with open_h5(path) as handle:
        header = read_dataset(handle, "ismrmrd_header", path)
        stated = handle.attrs.get("geometry")
    if stated is not None:
        try:
            return ImageGeometry.from_json(stated if isinstance(stated, str) else bytes(stated).decode())
        except (ValueError, KeyError, TypeError, IndexError):
            pass  # an unreadable attribute states nothing; fall back to the header
    if header is None:
        return ImageGeometry()
    found = _fov_and_matrix(header if isinstance(header, bytes) else str(header).encode())
    if found is None:
        return ImageGeometry()
    fov, matrix = found
    return ImageGeometry.from_fov(fov, matrix, None)
