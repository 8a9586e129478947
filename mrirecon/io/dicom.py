"""DICOM output (pydicom): one MR Image Storage series per volume, one file per slice.

Pixels are uint16 scaled over the whole volume (one Rescale Slope for every slice, so slices
compare), with a Window Centre/Width covering the volume. Pixel spacing, slice thickness,
orientation and positions are written only when the source stated them: a viewer told nothing
is better than one told something false.
"""

from __future__ import annotations

import datetime as _dt
import io
from dataclasses import dataclass

import numpy as np

from mrirecon.io.image_geometry import ImageGeometry

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
UINT16_MAX = 65535


@dataclass(frozen=True)
class SeriesInfo:
    """What names the series: patient id, description (method, acceleration), series number."""

    patient_id: str
    description: str
    series_number: int = 1
    timestamp: _dt.datetime | None = None


def quantise(volume: np.ndarray) -> tuple[np.ndarray, float]:
    """``(uint16 pixels, slope)`` with ``pixels * slope ~ volume``, one scale for the whole volume."""
    magnitude = np.abs(np.asarray(volume, dtype=np.float64))
    top = float(magnitude.max())
    slope = top / UINT16_MAX if top > 0 else 1.0
    pixels = np.clip(np.rint(magnitude / slope), 0, UINT16_MAX).astype(np.uint16)
    return pixels, slope


def dicom_series(volume: np.ndarray, geometry: ImageGeometry, info: SeriesInfo) -> list[bytes]:
    """One DICOM file (bytes) per slice of ``volume`` ``(S, H, W)``; rows run along H (readout)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    pixels, slope = quantise(volume)
    slices, rows, cols = pixels.shape
    when = info.timestamp or _dt.datetime.now()
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    window_width = float(pixels.max()) * slope or 1.0
    files = []
    for index in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MR_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality = "MR"
        ds.Manufacturer = "mrirecon"
        ds.PatientName = info.patient_id
        ds.PatientID = info.patient_id
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
        ds.StudyID = "1"
        ds.SeriesNumber = info.series_number
        ds.InstanceNumber = index + 1
        ds.SeriesDescription = info.description[:64]
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ScanningSequence = "RM"  # research mode: the sequence is not known here
        ds.SequenceVariant = "NONE"
        ds.MRAcquisitionType = "2D"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleType = "US"
        ds.WindowCenter = f"{window_width / 2:.6g}"
        ds.WindowWidth = f"{window_width:.6g}"
        _place(ds, geometry, index, (rows, cols))
        ds.PixelData = np.ascontiguousarray(pixels[index]).tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def _place(ds, geometry: ImageGeometry, index: int, shape: tuple[int, int]) -> None:
    """Spacing and thickness when known; orientation and position only with slice positions."""
    if geometry.spacing is None:
        return
    ds.PixelSpacing = [f"{geometry.spacing[0]:.6g}", f"{geometry.spacing[1]:.6g}"]
    if geometry.thickness:
        ds.SliceThickness = f"{geometry.thickness:.6g}"
    spacing_between = geometry.slice_spacing()
    if spacing_between:
        ds.SpacingBetweenSlices = f"{spacing_between:.6g}"
    placement = geometry.placement
    if placement is None:
        return
    # DICOM: first vector = along a row (increasing column = phase encode), second = down a column
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*placement.phase_dir, *placement.read_dir)]
    corner = geometry.corner(index, shape)
    ds.ImagePositionPatient = [f"{v:.4f}" for v in corner]
    normal = np.cross(placement.phase_dir, placement.read_dir)
    ds.SliceLocation = f"{float(np.dot(normal, placement.positions[index])):.4f}"
