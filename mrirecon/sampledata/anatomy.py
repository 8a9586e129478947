"""The random anatomy of one sample volume: a knee-like limb, drawn from a seeded generator.

Everything here is a number; ``phantom.py`` turns it into images. Units: 1.0 is half the
target width (about 70 mm in a fastMRI knee); ``u`` runs down the readout (superior to
inferior), ``v`` across the phase encode, ``z`` through the slices (posterior to anterior).
The limb is a 3D object: each slice of a volume cuts it at its own ``z``, so structures
appear, grow and vanish smoothly from slice to slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrirecon.sampledata.contrast import tissue_levels


@dataclass(frozen=True)
class Body:
    """The limb's outline: an elliptic cylinder along u, wider at the joint, with wavy sides."""

    centre_v: float
    tilt: float  # dv/du of the limb's axis
    centre_z: float
    half_width: float  # in-plane half-axis (v)
    depth: float  # through-plane half-axis (z)
    bulge: float  # relative widening at the joint
    waves: tuple[tuple[float, float, float], ...]  # (amplitude, cycles per unit u, phase)
    length: float  # |u| beyond which the limb leaves the coil's reach (rounded end)
    fat_left: float  # subcutaneous fat thickness on each side
    fat_right: float
    fat_depth: float  # fat thickness through-plane
    fat_wave: tuple[float, float, float]
    skin: float  # skin thickness


@dataclass(frozen=True)
class LongBone:
    """A long bone with a flared articular end (femur: end facing +u; tibia: facing -u)."""

    direction: int  # +1: the articular end is the bone's largest u; -1: its smallest
    end: float  # u of the articular surface on the bone's axis
    centre_v: float
    tilt: float
    centre_z: float
    shaft: tuple[float, float]  # (in-plane, through-plane) half-axes of the shaft
    epiphysis: tuple[float, float]  # the same at the articular end
    flare_at: float  # distance from the end where the shaft widens
    flare_width: float
    curl: float  # how far the articular surface recedes at its in-plane edges
    curl_z: float  # and at its through-plane edges
    notch: float  # central recess (femoral notch) or, negative, bump (tibial spines)
    notch_width: float
    notch_z: float
    notch_z_width: float
    cortex_shaft: float
    cortex_end: float
    physis: tuple[float, float, float, float]  # (distance from end, amplitude, frequency, phase)
    rounding: float


@dataclass(frozen=True)
class Ellipsoid:
    centre: tuple[float, float, float]  # (u, v, z)
    radii: tuple[float, float, float]


@dataclass(frozen=True)
class Fibula:
    """A thin bone below the joint on one side: a rounded head on a tube along u."""

    head: Ellipsoid
    top: float  # u where the shaft starts (under the head)
    centre_v: float
    slant: float  # dv/du of the shaft
    centre_z: float
    radius: float
    cortex: float


@dataclass(frozen=True)
class Segment:
    """A straight band in plane (u, v) -> (u, v), present in slices near ``centre_z``."""

    start: tuple[float, float]
    stop: tuple[float, float]
    width: float
    centre_z: float
    z_extent: float


@dataclass(frozen=True)
class Septum:
    """A thin wavy line between muscles: v = axis + offset + amplitude*sin(frequency*u + phase) + drift*z."""

    offset: float
    amplitude: float
    frequency: float
    phase: float
    drift: float
    u_range: tuple[float, float]
    width: float
    bright: bool  # fat-filled septum (bright in PD) or fascia (dark)


@dataclass(frozen=True)
class Vessel:
    """A tube: ``along='z'`` runs through the slices (a dot that drifts), ``'u'`` lies in plane."""

    along: str
    position: tuple[float, float]  # (u, v) at z=0 for 'z'; (v, z) at u=0 for 'u'
    slope: tuple[float, float]  # per unit z for 'z'; per unit u for 'u'
    radius: float
    bright: bool
    wave: tuple[float, float, float] = (0.0, 0.0, 0.0)  # in-plane meander for 'u'


@dataclass(frozen=True)
class Muscles:
    """Muscle bellies as cells around seed points (a Voronoi partition stretched along u),
    each with its own signal, separated by thin sheets of fat."""

    seeds: tuple[tuple[float, float, float], ...]  # (u, v, z)
    signal: tuple[float, ...]  # relative to the muscle level
    stretch_u: float  # < 1: cells elongated along u
    septum: float  # fat sheet thickness
    warp: float  # how far the sheets meander


@dataclass(frozen=True)
class Anatomy:
    acquisition: str
    levels: dict[str, float]
    body: Body
    joint: float  # u of the joint line
    cartilage: float  # cartilage thickness
    joint_space: float  # fluid between the cartilage layers
    meniscus_height: float
    femur: LongBone
    tibia: LongBone
    fibula: Fibula
    patella: Ellipsoid
    cruciates: tuple[Segment, ...]
    collaterals: tuple[Segment, ...]
    muscles: Muscles
    septa: tuple[Septum, ...]
    vessels: tuple[Vessel, ...]
    cysts: tuple[Ellipsoid, ...]
    texture: dict[str, float]  # relative amplitudes of the texture fields per tissue


def draw_anatomy(rng: np.random.Generator, acquisition: str) -> Anatomy:
    """One random knee-like anatomy with ``acquisition``'s tissue contrast."""
    u = rng.uniform
    levels = tissue_levels(acquisition, rng)
    body = Body(
        centre_v=u(-0.05, 0.05),
        tilt=u(-0.06, 0.06),
        centre_z=u(-0.05, 0.05),
        half_width=u(0.74, 0.86),
        depth=u(0.82, 0.98),
        bulge=u(0.02, 0.09),
        waves=tuple((u(0.01, 0.05), u(0.15, 0.8), u(0, 2 * np.pi)) for _ in range(3)),
        length=u(1.8, 2.3),
        fat_left=u(0.04, 0.12),
        fat_right=u(0.04, 0.12),
        fat_depth=u(0.05, 0.12),
        fat_wave=(u(0.1, 0.35), u(0.5, 2.0), u(0, 2 * np.pi)),
        skin=u(0.006, 0.012),
    )
    joint = u(-0.12, 0.2)
    cartilage = u(0.016, 0.028)
    joint_space = u(0.004, 0.01)
    half_gap = cartilage + 0.5 * joint_space
    axis_v = body.centre_v + body.tilt * joint + u(-0.04, 0.04)
    axis_z = body.centre_z + u(-0.08, 0.08)
    inner = body.half_width * (1 + body.bulge) - max(body.fat_left, body.fat_right)
    condyle = min(u(0.5, 0.66), 0.86 * inner)
    condyle_depth = u(0.42, 0.56)
    notch_z = axis_z + u(0.05, 0.25)
    femur = LongBone(
        direction=+1,
        end=joint - half_gap,
        centre_v=axis_v,
        tilt=u(-0.05, 0.05),
        centre_z=axis_z,
        shaft=(u(0.2, 0.27), u(0.2, 0.26)),
        epiphysis=(condyle, condyle_depth),
        flare_at=u(0.25, 0.4),
        flare_width=u(0.05, 0.09),
        curl=u(0.08, 0.16),
        curl_z=u(0.08, 0.2),
        notch=u(0.1, 0.2),
        notch_width=u(0.06, 0.1),
        notch_z=notch_z,
        notch_z_width=u(0.15, 0.3),
        cortex_shaft=u(0.035, 0.055),
        cortex_end=u(0.008, 0.014),
        physis=(u(0.18, 0.28), u(0.01, 0.03), u(6, 14), u(0, 2 * np.pi)),
        rounding=u(0.03, 0.06),
    )
    plateau = condyle * u(0.95, 1.06)
    tibia = LongBone(
        direction=-1,
        end=joint + half_gap,
        centre_v=axis_v + u(-0.02, 0.02),
        tilt=u(-0.05, 0.05),
        centre_z=axis_z + u(-0.04, 0.04),
        shaft=(u(0.18, 0.24), u(0.18, 0.24)),
        epiphysis=(plateau, condyle_depth * u(0.9, 1.05)),
        flare_at=u(0.25, 0.4),
        flare_width=u(0.06, 0.1),
        curl=u(0.02, 0.05),
        curl_z=u(0.03, 0.08),
        notch=-u(0.02, 0.04),
        notch_width=u(0.03, 0.05),
        notch_z=notch_z,
        notch_z_width=u(0.15, 0.3),
        cortex_shaft=u(0.035, 0.055),
        cortex_end=u(0.008, 0.014),
        physis=(u(0.15, 0.25), u(0.01, 0.03), u(6, 14), u(0, 2 * np.pi)),
        rounding=u(0.03, 0.06),
    )
    side = rng.choice([-1.0, 1.0])
    fib_v = axis_v + side * plateau * u(0.78, 0.92)
    fib_z = axis_z + u(0.12, 0.3)
    fib_top = joint + u(0.14, 0.22)
    fib_r = u(0.06, 0.09)
    fibula = Fibula(
        head=Ellipsoid((fib_top + 0.06, fib_v, fib_z), (u(0.08, 0.11), u(0.09, 0.12), u(0.08, 0.11))),
        top=fib_top + 0.06,
        centre_v=fib_v,
        slant=side * u(0.0, 0.06),
        centre_z=fib_z,
        radius=fib_r,
        cortex=u(0.012, 0.02),
    )
    anterior = rng.choice([-1.0, 1.0])
    patella = Ellipsoid(
        (joint - u(0.2, 0.35), axis_v + u(-0.05, 0.05), body.centre_z + anterior * body.depth * u(0.72, 0.82)),
        (u(0.18, 0.26), u(0.16, 0.24), u(0.09, 0.13)),
    )
    notch_v = femur.centre_v
    cruciates = (
        Segment(
            (femur.end - u(0.12, 0.2), notch_v + u(0.03, 0.07)),
            (tibia.end + u(0.01, 0.04), notch_v - u(0.0, 0.05)),
            u(0.018, 0.03),
            notch_z + u(-0.05, 0.05),
            u(0.1, 0.18),
        ),
        Segment(
            (femur.end - u(0.1, 0.18), notch_v - u(0.03, 0.07)),
            (tibia.end + u(0.05, 0.12), notch_v + u(0.0, 0.05)),
            u(0.02, 0.035),
            notch_z + u(0.05, 0.15),
            u(0.08, 0.15),
        ),
    )
    collaterals = tuple(
        Segment(
            (joint - u(0.25, 0.4), axis_v + s * (condyle + u(0.02, 0.05))),
            (joint + u(0.3, 0.45), axis_v + s * (plateau + u(0.0, 0.04))),
            u(0.012, 0.022),
            axis_z + u(-0.1, 0.1),
            u(0.2, 0.35),
        )
        for s in (-1.0, 1.0)
    )
    count = int(rng.integers(6, 13))
    muscles = Muscles(
        seeds=tuple(
            (u(-1.8, 1.8), body.centre_v + u(-0.8, 0.8) * body.half_width, body.centre_z + u(-0.9, 0.9) * body.depth)
            for _ in range(count)
        ),
        signal=tuple(float(np.exp(rng.normal(0.0, 0.08))) for _ in range(count)),
        stretch_u=u(0.3, 0.5),
        septum=u(0.005, 0.012),
        warp=u(0.004, 0.012),
    )
    septa = tuple(_draw_septum(rng, body, joint) for _ in range(int(rng.integers(2, 6))))
    vessels = tuple(_draw_dot_vessel(rng, body) for _ in range(int(rng.integers(30, 70)))) + tuple(
        _draw_inplane_vessel(rng, body, axis_v, anterior) for _ in range(int(rng.integers(1, 4)))
    )
    cysts = tuple(
        Ellipsoid(
            (joint + u(-0.6, 0.6), axis_v + u(-0.6, 0.6) * inner, body.centre_z + u(-0.5, 0.5) * body.depth),
            (u(0.02, 0.08), u(0.02, 0.08), u(0.03, 0.1)),
        )
        for _ in range(int(rng.integers(0, 3)))
    )
    texture = {
        "fat": u(0.02, 0.05),
        "muscle_coarse": u(0.04, 0.09),
        "muscle_fibre": u(0.06, 0.12),
        "marrow": u(0.03, 0.07),
        "cartilage": u(0.03, 0.07),
        "trabecular": u(0.4, 0.7),
        "fat_septa": u(0.4, 0.7),
        "striation": u(0.35, 0.55),
    }
    return Anatomy(
        acquisition=acquisition,
        levels=levels,
        body=body,
        joint=joint,
        cartilage=cartilage,
        joint_space=joint_space,
        meniscus_height=u(0.04, 0.07),
        femur=femur,
        tibia=tibia,
        fibula=fibula,
        patella=patella,
        cruciates=cruciates,
        collaterals=collaterals,
        muscles=muscles,
        septa=septa,
        vessels=vessels,
        cysts=cysts,
        texture=texture,
    )


def _draw_septum(rng: np.random.Generator, body: Body, joint: float) -> Septum:
    u = rng.uniform
    above = rng.random() < 0.5
    start = u(-1.5, joint - 0.5) if above else u(joint + 0.35, 1.0)
    length = u(0.3, 0.9)
    return Septum(
        offset=u(-0.75, 0.75) * body.half_width,
        amplitude=u(0.01, 0.06),
        frequency=u(1.0, 5.0),
        phase=u(0, 2 * np.pi),
        drift=u(-0.2, 0.2),
        u_range=(start, start + length),
        width=u(0.004, 0.01),
        bright=bool(rng.random() < 0.6),
    )


def _draw_dot_vessel(rng: np.random.Generator, body: Body) -> Vessel:
    u = rng.uniform
    return Vessel(
        along="z",
        position=(u(-1.3, 1.3), body.centre_v + u(-0.92, 0.92) * body.half_width),
        slope=(u(-0.3, 0.3), u(-0.3, 0.3)),
        radius=u(0.005, 0.02) if rng.random() < 0.8 else u(0.02, 0.04),
        bright=bool(rng.random() < 0.5),
    )


def _draw_inplane_vessel(rng: np.random.Generator, body: Body, axis_v: float, anterior: float) -> Vessel:
    u = rng.uniform
    return Vessel(
        along="u",
        position=(axis_v + u(-0.15, 0.15), body.centre_z - anterior * body.depth * u(0.45, 0.75)),
        slope=(u(-0.05, 0.05), u(-0.1, 0.1)),
        radius=u(0.02, 0.045),
        bright=bool(rng.random() < 0.5),
        wave=(u(0.0, 0.04), u(1.0, 3.0), u(0, 2 * np.pi)),
    )
