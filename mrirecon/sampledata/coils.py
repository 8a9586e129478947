"""Receive coils: loop elements on a cylinder around the limb, their sensitivities and noise.

Each loop's sensitivity falls off like the on-axis field of a current loop,
``(a^2 / (a^2 + d^2))^(3/2)`` (``a`` the loop radius, ``d`` the distance in 3D, so it also
changes from slice to slice), with a smooth phase that winds around the limb. The maps are
then partly flattened (divided by a power of their root-sum-of-squares), as a scanner's
normalisation would, leaving the brighter-near-the-coils shading real arrays show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.sampledata.shapes import Grid


@dataclass(frozen=True)
class CoilArray:
    """Loop coils around an axis along u through (``centre_v``, ``centre_z``)."""

    positions: np.ndarray  # (C, 3): u, v, z of each loop's centre
    tangents: np.ndarray  # (C, 3): unit vector around the limb at each loop
    loop_radius: float
    gain: np.ndarray  # (C,)
    phase_offset: np.ndarray  # (C,) radians
    phase_around: np.ndarray  # (C,) radians per unit along the tangent
    phase_along: np.ndarray  # (C,) radians per unit along u
    flatten: float  # exponent of the RSS normalisation (0: raw maps, 1: RSS exactly 1)
    reference: tuple[float, float, float]  # where the normalised maps' RSS is 1
    noise_correlation: float  # neighbouring coils' noise correlation scale

    @property
    def num_coils(self) -> int:
        return self.positions.shape[0]


def draw_coil_array(
    rng: np.random.Generator, num_coils: int, centre_v: float, centre_z: float, radius: float
) -> CoilArray:
    """``num_coils`` loops in one to three rings on a cylinder of ``radius`` (plus a gap)."""
    rings = 1 if num_coils <= 6 else 2 if num_coils <= 16 else 3
    per_ring = [num_coils // rings + (r < num_coils % rings) for r in range(rings)]
    cylinder = radius + rng.uniform(0.08, 0.2)
    ring_u = np.linspace(-0.35, 0.35, rings) if rings > 1 else np.zeros(1)
    positions, tangents = [], []
    for ring, count in enumerate(per_ring):
        start = rng.uniform(0, 2 * np.pi) + ring * np.pi / max(count, 1)
        for k in range(count):
            angle = start + 2 * np.pi * k / count + rng.normal(0.0, 0.05)
            positions.append(
                (
                    ring_u[ring] + rng.normal(0.0, 0.03),
                    centre_v + cylinder * np.cos(angle),
                    centre_z + cylinder * np.sin(angle),
                )
            )
            tangents.append((0.0, -np.sin(angle), np.cos(angle)))
    widest = max(per_ring)
    loop = float(np.clip(cylinder * np.sin(np.pi / max(widest, 2)) * rng.uniform(1.0, 1.3), 0.25, 0.7))
    return CoilArray(
        positions=np.asarray(positions, dtype=np.float64),
        tangents=np.asarray(tangents, dtype=np.float64),
        loop_radius=loop,
        gain=np.exp(rng.normal(0.0, 0.1, num_coils)),
        phase_offset=rng.uniform(-np.pi, np.pi, num_coils),
        phase_around=rng.normal(0.0, 1.5, num_coils),
        phase_along=rng.normal(0.0, 0.8, num_coils),
        flatten=rng.uniform(0.6, 0.8),
        reference=(0.0, centre_v, centre_z),
        noise_correlation=rng.uniform(0.05, 0.3),
    )


def _loop_fields(
    array: CoilArray, u: torch.Tensor, v: torch.Tensor, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised sensitivities at the points broadcast from u (1, H, 1), v (1, 1, W) and
    z (S, 1, 1): magnitudes (S, C, H, W) and unit phase factors (S, C, H, W).

    The phase is linear in position, so its factor is built from three small per-axis
    factors; only the magnitude needs the full 3D distance.
    """
    device = u.device

    def per_coil(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    pu, pv, pz = (per_coil(array.positions[:, i]) for i in range(3))
    tu, tv, tz = (per_coil(array.tangents[:, i]) for i in range(3))
    du, dv, dz = u.unsqueeze(1) - pu, v.unsqueeze(1) - pv, z.unsqueeze(1) - pz
    a2 = array.loop_radius**2
    distance2 = (du.square() + dz.square()) + dv.square()  # the one full-size float array
    magnitude = distance2.add_(a2).reciprocal_().mul_(a2).pow_(3).sqrt_().mul_(per_coil(array.gain))
    around, along = per_coil(array.phase_around), per_coil(array.phase_along)
    ones = torch.ones((), device=device)
    phase = torch.polar(ones, per_coil(array.phase_offset) + around * dz * tz) * torch.polar(
        ones, (around * tu + along) * du
    )
    phase = phase * torch.polar(ones, around * tv * dv)
    return magnitude, phase


def _reference_scale(array: CoilArray, device: torch.device) -> float:
    point = [torch.tensor(c, dtype=torch.float32, device=device).view(1, 1, 1) for c in array.reference]
    magnitude, _ = _loop_fields(array, *point)
    return float(torch.linalg.vector_norm(magnitude)) ** (1.0 - array.flatten)


def sensitivity_maps(array: CoilArray, grid: Grid) -> torch.Tensor:
    """Complex coil sensitivities (S, C, H, W), complex64, on ``grid``.

    Normalised so that their RSS is 1 at ``array.reference`` and varies smoothly elsewhere
    (higher near the coils); the normalisation is a fixed number per array, so maps computed
    slice range by slice range are the same as maps of the whole stack.
    """
    magnitude, phase = _loop_fields(array, grid.u, grid.v, grid.z)
    rss = torch.linalg.vector_norm(magnitude, dim=1, keepdim=True).clamp_min_(1e-12)
    magnitude.div_(rss.pow_(array.flatten).mul_(_reference_scale(array, grid.device)))
    return phase.mul_(magnitude)


def single_coil_weights(array: CoilArray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Weights (C,) that combine the array into one emulated coil, as fastMRI's single-coil
    data were made: phase-aligned at the reference point, where the combination is 1."""
    point = [torch.tensor(c, dtype=torch.float32, device=device).view(1, 1, 1) for c in array.reference]
    magnitude, phase = _loop_fields(array, *point)
    at_reference = (magnitude * phase).flatten()
    return at_reference.conj() / at_reference.abs().square().sum().sqrt()


def noise_cholesky(array: CoilArray, rng: np.random.Generator) -> np.ndarray:
    """The lower Cholesky factor (C, C) of a coil noise covariance: unequal coil noise levels,
    correlated between neighbouring loops (unit average variance)."""
    gaps = array.positions[:, None, :] - array.positions[None, :, :]
    kernel = np.exp(-np.square(gaps).sum(-1) / (2 * (1.5 * array.loop_radius) ** 2))
    rho = array.noise_correlation
    correlation = (1 - rho) * np.eye(array.num_coils) + rho * kernel
    level = np.exp(rng.normal(0.0, 0.15, array.num_coils))
    level /= math.sqrt(np.mean(np.square(level)))
    covariance = correlation * np.outer(level, level)
    return np.linalg.cholesky(covariance)
