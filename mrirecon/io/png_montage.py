"""A PNG montage of a volume's slices (one grey scale over the whole volume)."""

from __future__ import annotations

import io
import math

import numpy as np


def montage(volume: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile ``(S, H, W)`` slices row by row into one ``(rows*H, cols*W)`` image (empty tiles 0)."""
    slices, height, width = volume.shape
    cols = columns or math.ceil(math.sqrt(slices))
    rows = math.ceil(slices / cols)
    canvas = np.zeros((rows * height, cols * width), dtype=np.float32)
    for index in range(slices):
        r, c = divmod(index, cols)
        canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = volume[index]
    return canvas


def png_bytes(volume: np.ndarray) -> bytes:
    """An 8-bit grey PNG of the montage, scaled from 0 to the volume's maximum."""
    from matplotlib import image as mpimg

    tiles = montage(np.abs(np.asarray(volume, dtype=np.float32)))
    top = float(tiles.max()) or 1.0
    buffer = io.BytesIO()
    mpimg.imsave(buffer, tiles, cmap="gray", vmin=0.0, vmax=top, format="png", metadata={"Software": "mrirecon"})
    return buffer.getvalue()
