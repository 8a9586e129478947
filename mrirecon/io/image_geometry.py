"""What is known about where a reconstruction's pixels are: spacing, and maybe orientation.

Sources, in order: the ``geometry`` attribute ``convert`` writes (slice centres and directions,
patient coordinates LPS in mm, as DICOM and Siemens/ISMRMRD use) and the ISMRMRD header's
``reconSpace`` field of view. fastMRI's own files carry neither a FOV worth trusting nor slice
positions, so everything here is optional and nothing is invented.
"""

from __future__ import annotations

import xml.etree.ElementTree as etree
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

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
    """The geometry stated by a fastMRI or reconstruction file (its header and attributes): the
    spacing is the recon FOV over the recon matrix (a different crop keeps the pixel size)."""
    with h5py.File(path, "r") as handle:
        header = handle["ismrmrd_header"][()] if "ismrmrd_header" in handle else None
        geometry_json = handle.attrs.get("geometry")
    placement = None
    if geometry_json is not None:
        try:
            placement = Geometry.from_json(geometry_json if isinstance(geometry_json, str) else geometry_json.decode())
        except (ValueError, KeyError, TypeError):
            placement = None
    if header is None:
        return ImageGeometry(placement=None)
    found = _fov_and_matrix(header if isinstance(header, bytes) else str(header).encode())
    if found is None:
        return ImageGeometry()
    (fx, fy, fz), (mx, my) = found
    if fx <= 0 or fy <= 0 or mx <= 0 or my <= 0:
        return ImageGeometry()
    spacing = (fx / mx, fy / my)
    return ImageGeometry(spacing=spacing, thickness=fz if fz > 0 else None, placement=placement)
