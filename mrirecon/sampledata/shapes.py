"""Soft-edged shapes on a slice grid: signed distances, partial-volume masks, painting.

Distances are in the phantom's units (1.0 = half the target width); negative inside.
Every function broadcasts over the grid tensors ``u`` (1, H, 1), ``v`` (1, 1, W) and
``z`` (S, 1, 1), so one call draws a shape in all slices at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid:
    """Pixel centres of a stack of slices.

    ``u``: readout position (rows, top to bottom), ``v``: phase-encode position (columns),
    ``z``: slice position. 1.0 is half the target (crop) width; the image spans twice the
    target along the readout (2x oversampling). ``pixel`` is the in-plane pixel size.
    """

    u: torch.Tensor  # (1, H, 1), increasing
    v: torch.Tensor  # (1, 1, W), increasing
    z: torch.Tensor  # (S, 1, 1), increasing
    pixel: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.z.shape[0], self.u.shape[1], self.v.shape[2]

    @property
    def device(self) -> torch.device:
        return self.u.device

    def slices(self, start: int, stop: int) -> "Grid":
        """The same grid restricted to slices ``[start:stop]``."""
        return Grid(self.u, self.v, self.z[start:stop], self.pixel)

    def box(
        self,
        u_range: tuple[float, float],
        v_range: tuple[float, float],
        z_range: tuple[float, float] | None = None,
    ) -> tuple["Grid", tuple[slice, slice, slice]] | None:
        """The part of the grid inside a box, and its index into (S, H, W) arrays
        (``None`` if the box misses the grid). Shapes are drawn only where they can be."""
        rows = _index_range(self.u.flatten(), u_range)
        cols = _index_range(self.v.flatten(), v_range)
        slices = slice(0, self.z.shape[0]) if z_range is None else _index_range(self.z.flatten(), z_range)
        if rows.start == rows.stop or cols.start == cols.stop or slices.start == slices.stop:
            return None
        sub = Grid(self.u[:, rows], self.v[:, :, cols], self.z[slices], self.pixel)
        return sub, (slices, rows, cols)


def _index_range(coords: torch.Tensor, bounds: tuple[float, float]) -> slice:
    lo = int(torch.searchsorted(coords, torch.tensor(bounds[0], dtype=coords.dtype, device=coords.device)))
    hi = int(torch.searchsorted(coords, torch.tensor(bounds[1], dtype=coords.dtype, device=coords.device)))
    return slice(lo, max(lo, hi))


def make_grid(
    image_hw: tuple[int, int],
    recon_hw: tuple[int, int],
    z_positions: torch.Tensor,
    device: torch.device | str = "cpu",
) -> Grid:
    """The grid of an ``image_hw`` image whose central ``recon_hw`` crop spans [-1, 1] across.

    Pixels are square (the crop's width sets the scale); the centre is pixel ``n // 2``,
    the DC position of the centred FFT.
    """
    height, width = image_hw
    pixel = 2.0 / recon_hw[1]
    u = (torch.arange(height, dtype=torch.float32, device=device) - height // 2) * pixel
    v = (torch.arange(width, dtype=torch.float32, device=device) - width // 2) * pixel
    z = torch.as_tensor(z_positions, dtype=torch.float32, device=device)
    return Grid(u.view(1, height, 1), v.view(1, 1, width), z.view(-1, 1, 1), pixel)


def soft_inside(sd: torch.Tensor, edge: float) -> torch.Tensor:
    """Partial-volume occupancy in [0, 1] from a signed distance (about 1.5 ``edge``/0.35 px wide)."""
    return torch.sigmoid(sd * (-1.0 / edge))


def smooth_max(a: torch.Tensor, b: torch.Tensor, radius: float) -> torch.Tensor:
    """max(a, b) with corners rounded over about ``radius`` (intersection of two shapes)."""
    return 0.5 * (a + b + torch.sqrt((a - b).square() + radius * radius))


def signed_sqrt(q: torch.Tensor) -> torch.Tensor:
    """sqrt(q) for q >= 0 and -sqrt(-q) below, so a shape a slice misses gets a negative width."""
    return torch.sign(q) * torch.sqrt(q.abs())


def section_half_width(radius: float | torch.Tensor, depth: float | torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """In-slice half-width of an elliptic cross-section (half-axes ``radius`` in-plane,
    ``depth`` through-plane) cut at ``offset`` from its centre; negative where the slice misses it."""
    return radius * signed_sqrt(1.0 - (offset / depth).square())


def interval_sd(x: torch.Tensor, centre: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Signed distance to the interval ``[centre - left, centre + right]``."""
    return torch.maximum(x - centre - right, centre - x - left)


def ellipsoid_sd(grid: Grid, centre: tuple[float, float, float], radii: tuple[float, float, float]) -> torch.Tensor:
    """Approximate signed distance (S, H, W) to an axis-aligned ellipsoid (u, v, z)."""
    cu, cv, cz = centre
    ru, rv, rz = radii
    reach = signed_sqrt(1.0 - ((grid.z - cz) / rz).square())
    rho = torch.sqrt(((grid.u - cu) / ru).square() + ((grid.v - cv) / rv).square())
    return (rho - reach) * min(ru, rv)


def segment_distance(grid: Grid, start: tuple[float, float], stop: tuple[float, float]) -> torch.Tensor:
    """In-plane distance (1, H, W) from each pixel to the segment ``start``-``stop`` in (u, v)."""
    du, dv = stop[0] - start[0], stop[1] - start[1]
    length2 = max(du * du + dv * dv, 1e-12)
    pu, pv = grid.u - start[0], grid.v - start[1]
    t = ((pu * du + pv * dv) / length2).clamp(0.0, 1.0)
    return torch.sqrt((pu - t * du).square() + (pv - t * dv).square())


def paint(image: torch.Tensor, value: torch.Tensor | float, mask: torch.Tensor) -> torch.Tensor:
    """Lay tissue ``value`` over ``image`` where ``mask`` (partial volume in [0, 1]) says, in place."""
    return image.add_(mask * (value - image))
