"""Render an ``Anatomy`` into a stack of complex images: tissue by tissue, all slices at once."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mrirecon.sampledata.anatomy import (
    Anatomy,
    Body,
    Ellipsoid,
    Fibula,
    LongBone,
    Muscles,
    Segment,
    Septum,
    Vessel,
)
from mrirecon.sampledata.shapes import (
    Grid,
    ellipsoid_sd,
    interval_sd,
    paint,
    section_half_width,
    segment_distance,
    smooth_max,
    soft_inside,
)
from mrirecon.sampledata.texture import bandlimited_noise, ridges

#: Partial-volume edge scale, in pixels (the 10-90% rise is about 4x this).
EDGE_PIXELS = 0.35


@dataclass
class _Canvas:
    """The image being painted and what every structure needs: the grid, the limb's inside, texture."""

    grid: Grid
    image: torch.Tensor
    inner: torch.Tensor  # inside the subcutaneous fat
    fine: torch.Tensor  # fine texture (trabecular bone, cartilage)
    edge: float
    thin: float

    def region(
        self, u_range: tuple[float, float], v_range: tuple[float, float], z_range: tuple[float, float] | None = None
    ) -> tuple[Grid, tuple[slice, slice, slice]] | None:
        return self.grid.box(u_range, v_range, z_range)


def render_magnitude(anatomy: Anatomy, grid: Grid, generator: torch.Generator) -> torch.Tensor:
    """The anatomy's signal magnitude (S, H, W), float32, on ``grid`` (fat = about 1 in PD).

    Structures are painted in order, each over the ones before, with partial-volume edges;
    small ones only inside their bounding box.
    """
    edge = EDGE_PIXELS * grid.pixel
    thin = 0.8 * grid.pixel  # the narrowest line drawn: finer ones would vanish between pixels
    lv, tex = anatomy.levels, anatomy.texture
    coarse = bandlimited_noise(grid, generator, wavelength=0.15, z_correlation=0.12)
    fibre = bandlimited_noise(grid, generator, wavelength=max(0.05, 3 * grid.pixel), stretch_u=5.0, z_correlation=0.05)
    fine = bandlimited_noise(grid, generator, wavelength=max(0.04, 4 * grid.pixel), z_correlation=0.03)

    image = torch.zeros(grid.shape, dtype=torch.float32, device=grid.device)
    body_sd = _limb_sd(anatomy.body, anatomy.joint, grid, inset=False)
    body = soft_inside(body_sd, edge)
    # fibrous septa: a web of thin dark strands through the fat lobules
    lobules = bandlimited_noise(grid, generator, wavelength=max(0.08, 6 * grid.pixel), z_correlation=0.04)
    septa = tex["fat_septa"] * ridges(lobules, 0.35)
    del lobules
    paint(image, lv["fat"] * (1 + tex["fat"] * coarse) * (1 - septa) + lv["fibrous"] * septa, body)
    paint(image, lv["skin"], body - soft_inside(body_sd + max(anatomy.body.skin, thin), edge))
    del body_sd

    inner = soft_inside(_limb_sd(anatomy.body, anatomy.joint, grid, inset=True), edge)
    # around the joint line the limb holds less muscle and more fat
    reach = 0.22 * (1 + 0.3 * torch.cos(4 * (grid.v - anatomy.body.centre_v)))
    muscle = inner * (1 - 0.6 * torch.exp(-(((grid.u - anatomy.joint) / reach) ** 4)))
    cells, sheets = _muscle_cells(anatomy.muscles, grid, coarse, max(anatomy.muscles.septum, thin), edge)
    muscle_signal = lv["muscle"] * cells * (1 + tex["muscle_coarse"] * coarse + tex["muscle_fibre"] * fibre)
    # striation: streaks of fat between the fascicles, along the fibres
    streaks = tex["striation"] * ridges(fibre, 0.3)
    muscle_signal = muscle_signal * (1 - streaks) + lv["fat"] * streaks
    del streaks
    paint(image, muscle_signal, muscle * (1 - sheets))
    del coarse, fibre, cells, sheets, muscle_signal

    canvas = _Canvas(grid, image, inner, fine, edge, thin)
    for septum in anatomy.septa:
        _paint_septum(canvas, anatomy.body, septum, muscle, lv["fat"] if septum.bright else lv["fibrous"])
    del muscle
    for vessel in anatomy.vessels:
        _paint_vessel(canvas, vessel, lv["blood"] if vessel.bright else lv["flow_void"])
    for band in anatomy.collaterals:
        _paint_band(canvas, band, lv["fibrous"])
    for bone in (anatomy.femur, anatomy.tibia):
        _paint_long_bone(canvas, bone, anatomy.cartilage, lv, tex)
    _paint_fibula(canvas, anatomy.fibula, lv, tex)
    _paint_patella(canvas, anatomy.patella, lv, tex)
    _paint_joint(canvas, anatomy, lv)
    for band in anatomy.cruciates:
        _paint_band(canvas, band, lv["fibrous"])
    for cyst in anatomy.cysts:
        _paint_ellipsoid(canvas, cyst, lv["fluid"])
    return image.clamp_min_(0.0)


def background_phase(rng: np.random.Generator, grid: Grid) -> torch.Tensor:
    """A smooth random phase map (S, H, W) in radians: low-order polynomial in (u, v, z),
    about a radian or two across the object, as from B0 inhomogeneity and receive phase."""
    c = rng.normal(0.0, [math.pi, 0.6, 0.6, 0.5, 0.3, 0.3, 0.3, 0.2, 0.2])
    u, v, z = grid.u, grid.v, grid.z
    return (
        c[0] + c[1] * u + c[2] * v + c[3] * z + c[4] * u * u + c[5] * v * v + c[6] * u * v + c[7] * u * z + c[8] * v * z
    )


# --- the limb -----------------------------------------------------------------------------


def _body_axis(body: Body, u: torch.Tensor) -> torch.Tensor:
    return body.centre_v + body.tilt * u


def _limb_sd(body: Body, joint: float, grid: Grid, inset: bool) -> torch.Tensor:
    """Signed distance to the limb's outline, or (``inset``) to the compartment inside the fat."""
    u = grid.u
    radius = body.half_width * (1 + body.bulge * torch.exp(-(((u - joint) / 0.45) ** 2)))
    for amplitude, cycles, phase in body.waves:
        radius = radius + amplitude * torch.sin(2 * math.pi * cycles * u + phase)
    depth, length = body.depth, body.length
    left = right = radius
    if inset:
        amp, cycles, phase = body.fat_wave
        wobble = 1 + amp * torch.sin(2 * math.pi * cycles * u + phase)
        left, right = radius - body.fat_left * wobble, radius - body.fat_right * wobble
        depth, length = depth - body.fat_depth, length - max(body.fat_left, body.fat_right)
    offset = grid.z - body.centre_z
    sd = interval_sd(
        grid.v, _body_axis(body, u), section_half_width(left, depth, offset), section_half_width(right, depth, offset)
    )
    return smooth_max(sd, u.abs() - length, 0.15)


# --- bones --------------------------------------------------------------------------------


def _bone_frame(bone: LongBone, grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance ``s`` (1, H, 1) from the articular end along the shaft, and the shaft's axis in v."""
    s = bone.direction * (bone.end - grid.u)
    return s, bone.centre_v + bone.tilt * s


def articular_recess(bone: LongBone, grid: Grid, notch: bool = True) -> torch.Tensor:
    """How far the articular surface lies from ``bone.end`` at each (v, z): it curls away at
    the edges and (``notch``) has a notch (or, negative, a bump) in the middle."""
    rv, rz = bone.epiphysis
    dv = grid.v - bone.centre_v
    recess = bone.curl * (dv / rv) ** 4 + bone.curl_z * ((grid.z - bone.centre_z) / rz) ** 2
    if notch:
        depth = bone.notch * torch.exp(-(((grid.z - bone.notch_z) / bone.notch_z_width) ** 2))
        recess = recess + depth * torch.exp(-((dv / bone.notch_width) ** 2))
    return recess


def bone_sd(bone: LongBone, grid: Grid, grow: float = 0.0, cortex: bool = False) -> torch.Tensor:
    """Signed distance (S, H, W) to the bone (``grow`` > 0: a layer around it), or to its
    marrow cavity (``cortex``: inside the cortical shell, thick along the shaft, thin at the end)."""
    s, axis = _bone_frame(bone, grid)
    flare = torch.sigmoid((bone.flare_at - s) / bone.flare_width)
    (shaft_v, shaft_z), (epi_v, epi_z) = bone.shaft, bone.epiphysis
    radius_v = shaft_v + (epi_v - shaft_v) * flare + grow
    radius_z = shaft_z + (epi_z - shaft_z) * flare + grow
    end = -grow
    if cortex:
        shell = bone.cortex_end + (bone.cortex_shaft - bone.cortex_end) * (1 - flare)
        radius_v, radius_z, end = radius_v - shell, radius_z - shell, bone.cortex_end
    half_width = section_half_width(radius_v, radius_z, grid.z - bone.centre_z)
    side = (grid.v - axis).abs() - half_width
    cap = articular_recess(bone, grid) + end - s
    return smooth_max(side, cap, bone.rounding)


def _paint_long_bone(canvas: _Canvas, bone: LongBone, cartilage: float, lv: dict, tex: dict) -> None:
    """Cortex, textured marrow with a physeal scar, and articular cartilage near the end."""
    reach_v = max(bone.shaft[0], bone.epiphysis[0]) + abs(bone.tilt) * 2.5 + 0.1
    reach_z = max(bone.shaft[1], bone.epiphysis[1]) + cartilage + 0.05
    margin = cartilage + bone.rounding + 0.05
    u_range = (bone.end - 5.0, bone.end + margin) if bone.direction > 0 else (bone.end - margin, bone.end + 5.0)
    found = canvas.region(
        u_range, (bone.centre_v - reach_v, bone.centre_v + reach_v), (bone.centre_z - reach_z, bone.centre_z + reach_z)
    )
    if found is None:
        return
    grid, index = found
    image, inner, fine = canvas.image[index], canvas.inner[index], canvas.fine[index]
    outer = soft_inside(bone_sd(bone, grid), canvas.edge) * inner
    paint(image, lv["cortex"], outer)
    marrow = soft_inside(bone_sd(bone, grid, cortex=True), canvas.edge) * inner
    paint(image, _trabecular_marrow(lv, tex, fine), marrow)
    depth, amplitude, frequency, phase = bone.physis
    s, axis = _bone_frame(bone, grid)
    scar = (s - depth - amplitude * torch.sin(frequency * (grid.v - axis) + phase)).abs() - 0.5 * canvas.thin
    paint(image, 0.5 * (lv["marrow"] + lv["cortex"]), soft_inside(scar, canvas.edge) * marrow)
    coated = soft_inside(bone_sd(bone, grid, grow=cartilage), canvas.edge) * inner
    cover = torch.sigmoid((0.3 - s) / 0.03)
    paint(image, lv["cartilage"] * (1 + tex["cartilage"] * fine), (coated - outer).clamp_min(0.0) * cover)


def _trabecular_marrow(lv: dict, tex: dict, fine: torch.Tensor) -> torch.Tensor:
    """Marrow signal crossed by a web of dark trabeculae (cancellous bone)."""
    trabeculae = tex["trabecular"] * ridges(fine, 0.3)
    return lv["marrow"] * (1 + tex["marrow"] * fine) * (1 - trabeculae) + lv["cortex"] * trabeculae


def _paint_fibula(canvas: _Canvas, fib: Fibula, lv: dict, tex: dict) -> None:
    head = fib.head
    reach_v = max(head.radii[1], fib.radius) + abs(fib.slant) * 2.5 + 0.05
    reach_z = max(head.radii[2], fib.radius) + 0.05
    found = canvas.region(
        (head.centre[0] - head.radii[0] - 0.05, 5.0),
        (fib.centre_v - reach_v, fib.centre_v + reach_v),
        (fib.centre_z - reach_z, fib.centre_z + reach_z),
    )
    if found is None:
        return
    grid, index = found

    def sd(shrink: float) -> torch.Tensor:
        axis = fib.centre_v + fib.slant * (grid.u - fib.top)
        radius = fib.radius - shrink
        shaft = (grid.v - axis).abs() - section_half_width(radius, radius, grid.z - fib.centre_z)
        shaft = smooth_max(shaft, fib.top - grid.u, 0.05)
        return torch.minimum(shaft, ellipsoid_sd(grid, head.centre, tuple(r - shrink for r in head.radii)))

    image, inner = canvas.image[index], canvas.inner[index]
    paint(image, lv["cortex"], soft_inside(sd(0.0), canvas.edge) * inner)
    paint(image, _trabecular_marrow(lv, tex, canvas.fine[index]), soft_inside(sd(fib.cortex), canvas.edge) * inner)


def _paint_patella(canvas: _Canvas, patella: Ellipsoid, lv: dict, tex: dict) -> None:
    found = _ellipsoid_region(canvas, patella)
    if found is None:
        return
    grid, index = found
    image, inner = canvas.image[index], canvas.inner[index]
    paint(image, lv["cortex"], soft_inside(ellipsoid_sd(grid, patella.centre, patella.radii), canvas.edge) * inner)
    marrow = ellipsoid_sd(grid, patella.centre, tuple(r - 0.012 for r in patella.radii))
    paint(image, _trabecular_marrow(lv, tex, canvas.fine[index]), soft_inside(marrow, canvas.edge) * inner)


def _paint_ellipsoid(canvas: _Canvas, shape: Ellipsoid, level: float) -> None:
    found = _ellipsoid_region(canvas, shape)
    if found is None:
        return
    grid, index = found
    mask = soft_inside(ellipsoid_sd(grid, shape.centre, shape.radii), canvas.edge) * canvas.inner[index]
    paint(canvas.image[index], level, mask)


def _ellipsoid_region(canvas: _Canvas, shape: Ellipsoid) -> tuple[Grid, tuple[slice, slice, slice]] | None:
    (cu, cv, cz), (ru, rv, rz) = shape.centre, shape.radii
    margin = 8 * canvas.edge
    return canvas.region((cu - ru - margin, cu + ru + margin), (cv - rv - margin, cv + rv + margin), (cz - rz, cz + rz))


def _paint_joint(canvas: _Canvas, anatomy: Anatomy, lv: dict) -> None:
    """Fluid between the cartilage layers and the menisci at both sides."""
    femur, tibia, thick = anatomy.femur, anatomy.tibia, anatomy.cartilage
    rv, rz = tibia.epiphysis
    found = canvas.region(
        (femur.end - femur.curl - femur.curl_z - 0.1, tibia.end + tibia.curl + tibia.curl_z + 0.1),
        (tibia.centre_v - 1.1 * rv, tibia.centre_v + 1.1 * rv),
        (tibia.centre_z - rz, tibia.centre_z + rz),
    )
    if found is None:
        return
    grid, index = found
    image = canvas.image[index]
    # the femoral notch holds fat and the cruciate ligaments, not joint fluid
    femoral_surface = femur.end - articular_recess(femur, grid, notch=False) + thick
    tibial_surface = tibia.end + articular_recess(tibia, grid) - thick
    gap = torch.maximum(femoral_surface - grid.u, grid.u - tibial_surface)
    reach = section_half_width(rv, rz, grid.z - tibia.centre_z)
    across = (grid.v - tibia.centre_v).abs()
    # fluid: a thin film between the cartilage layers, not the wide spaces where surfaces curl away
    film = (grid.u - 0.5 * (femur.end + tibia.end)).abs() - (0.5 * anatomy.joint_space + 0.012)
    fluid = torch.maximum(torch.maximum(gap, film), across - 0.75 * reach)
    paint(image, lv["fluid"], soft_inside(fluid, canvas.edge))
    # menisci: wedges between the cartilage layers at both sides, thickest at the rim
    rim = (across - 0.66 * reach) / (0.36 * reach).clamp_min(1e-3)
    roof = anatomy.joint - anatomy.meniscus_height * rim - grid.u
    meniscus = torch.maximum(torch.maximum(gap - 0.005, roof), torch.maximum(-rim, rim - 1.0))
    paint(image, lv["fibrous"], soft_inside(meniscus, canvas.edge))


def _muscle_cells(
    muscles: Muscles, grid: Grid, warp_field: torch.Tensor, septum: float, edge: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel signal factor of the nearest muscle belly, and the fat sheets between bellies."""
    v = grid.v + muscles.warp * warp_field
    nearest = second = None
    signal = torch.ones_like(warp_field)
    for (su, sv, sz), factor in zip(muscles.seeds, muscles.signal, strict=True):
        d = torch.sqrt(((grid.u - su) * muscles.stretch_u).square() + (v - sv).square() + (grid.z - sz).square())
        if nearest is None:
            nearest, second = d, torch.full_like(d, float("inf"))
            signal.fill_(factor)
            continue
        closer = d < nearest
        second = torch.where(closer, nearest, torch.minimum(second, d))
        nearest = torch.where(closer, d, nearest)
        signal = torch.where(closer, factor, signal)
    sheets = soft_inside(0.5 * (second - nearest) - 0.5 * septum, edge)
    return signal, sheets


# --- small structures ---------------------------------------------------------------------


def _paint_septum(canvas: _Canvas, body: Body, septum: Septum, muscle: torch.Tensor, level: float) -> None:
    lo, hi = septum.u_range
    found = canvas.region((lo - 0.15, hi + 0.15), (-5.0, 5.0))
    if found is None:
        return
    grid, index = found
    axis = _body_axis(body, grid.u)
    centre = axis + septum.offset + septum.amplitude * torch.sin(septum.frequency * grid.u + septum.phase)
    line = (grid.v - centre - septum.drift * grid.z).abs() - 0.5 * max(septum.width, canvas.thin)
    along = soft_inside((grid.u - 0.5 * (lo + hi)).abs() - 0.5 * (hi - lo), 0.03)
    paint(canvas.image[index], level, soft_inside(line, canvas.edge) * along * muscle[index])


def _paint_band(canvas: _Canvas, band: Segment, level: float) -> None:
    """A ligament: a straight band in plane, fading out through-plane beyond ``z_extent``."""
    margin = band.width + 8 * canvas.edge
    (u0, v0), (u1, v1) = band.start, band.stop
    found = canvas.region(
        (min(u0, u1) - margin, max(u0, u1) + margin),
        (min(v0, v1) - margin, max(v0, v1) + margin),
        (band.centre_z - band.z_extent - 0.2, band.centre_z + band.z_extent + 0.2),
    )
    if found is None:
        return
    grid, index = found
    distance = segment_distance(grid, band.start, band.stop) - 0.5 * max(band.width, canvas.thin)
    through = soft_inside((grid.z - band.centre_z).abs() - band.z_extent, 0.03)
    paint(canvas.image[index], level, soft_inside(distance, canvas.edge) * through * canvas.inner[index])


def _paint_vessel(canvas: _Canvas, vessel: Vessel, level: float) -> None:
    radius = max(vessel.radius, 0.5 * canvas.thin)
    margin = radius + 8 * canvas.edge
    z_lo, z_hi = float(canvas.grid.z.min()), float(canvas.grid.z.max())
    if vessel.along == "z":
        # a dot drifting across slices
        (u0, v0), (du, dv) = vessel.position, vessel.slope
        us, vs = (u0 + du * z_lo, u0 + du * z_hi), (v0 + dv * z_lo, v0 + dv * z_hi)
        found = canvas.region((min(us) - margin, max(us) + margin), (min(vs) - margin, max(vs) + margin))
        if found is None:
            return
        grid, index = found
        distance = torch.sqrt((grid.u - (u0 + du * grid.z)).square() + (grid.v - (v0 + dv * grid.z)).square())
        paint(canvas.image[index], level, soft_inside(distance - radius, canvas.edge) * canvas.inner[index])
        return
    # a tube lying in plane, seen only in the slices it passes through
    (v0, z0), (dv, dz) = vessel.position, vessel.slope
    amplitude, frequency, phase = vessel.wave
    sweep_v, sweep_z = abs(dv) * 2.5 + amplitude + margin, abs(dz) * 2.5 + radius + 0.05
    found = canvas.region((-5.0, 5.0), (v0 - sweep_v, v0 + sweep_v), (z0 - sweep_z, z0 + sweep_z))
    if found is None:
        return
    grid, index = found
    centre_v = v0 + dv * grid.u + amplitude * torch.sin(frequency * grid.u + phase)
    half_width = section_half_width(radius, radius, grid.z - (z0 + dz * grid.u))
    mask = soft_inside((grid.v - centre_v).abs() - half_width, canvas.edge) * canvas.inner[index]
    paint(canvas.image[index], level, mask)
