"""NIfTI-1 output (nibabel): float32 magnitude, affine from the known geometry."""

from __future__ import annotations

import numpy as np

from mrirecon.io.image_geometry import ImageGeometry


def nifti_bytes(volume: np.ndarray, geometry: ImageGeometry) -> tuple[bytes, bool]:
    """A gzipped NIfTI-1 of ``volume`` ``(S, H, W)`` stored as ``[row, column, slice]``;
    returns ``(bytes, geometry_known)``. Unknown geometry gives the identity affine."""
    import nibabel as nib

    data = np.ascontiguousarray(np.transpose(np.asarray(volume, dtype=np.float32), (1, 2, 0)))
    affine = geometry.affine_ras(tuple(volume.shape[1:]))
    known = affine is not None
    image = nib.Nifti1Image(data, affine if known else np.eye(4))
    image.header.set_xyzt_units("mm")
    code = 1 if known else 0  # scanner coordinates, or "unknown"
    image.set_qform(image.affine, code=code)
    image.set_sform(image.affine, code=code)
    return _gzip(image.to_bytes()), known


def _gzip(raw: bytes) -> bytes:
    import gzip

    return gzip.compress(raw, compresslevel=6, mtime=0)  # mtime 0: the same command gives the same bytes
