"""Procedural complex-valued test objects, one generator per sample type.

Each sample type has its own look (spokes, wiring, particles, lattices, moiré) and its
own range of phase shift and absorption, so that a reconstruction artifact can be traced
to something physical: a strongly phase-shifting, strongly absorbing object (liquid-metal
particles) is what later produces phase singularities, a dense circuit is what shows line
artifacts, a weak biological object is what shows low contrast. The transmission is
``exp(i·phase − absorption)`` with ``phase`` in radians and ``absorption`` in nepers of
amplitude. Pure numpy (no scipy), everything drawn from the given generator.

The drawing primitives are :mod:`ptychobench.sim._shapes`; what stays here (a little
over 500 lines) is one table of materials and one generator per sample type, read
side by side when a sample type's look or range is tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypedDict

import numpy as np
import numpy.typing as npt

from ptychobench.sim._shapes import (
    _disc,
    _grid,
    _hex_lattice,
    _polygon,
    _rectangle,
    _regular_polygon,
    _segment,
    _smooth,
    _sphere,
    _texture,
)

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex64]
Maps = tuple[FloatArray, FloatArray]  # (phase shape, absorption shape), each max 1


class ObjectMetadata(TypedDict):
    """What a caption can say about a sample type."""

    sample_type: str
    description: str
    material: str
    phase_range_rad: tuple[float, float]
    absorption_range: tuple[float, float]
    strong_phase: bool  # phase far above 2π: wraps, and can make phase singularities


@dataclass(frozen=True)
class _Material:
    description: str
    material: str
    phase_max: tuple[float, float]  # the object's maximum phase is drawn from this range
    absorption_max: tuple[float, float]


_MATERIALS: Final[dict[str, _Material]] = {
    "Siemens star": _Material(
        "A Siemens star resolution test pattern: radial spokes that get finer toward the "
        "centre, with concentric gaps.",
        "gold on a thin silicon nitride membrane",
        (0.8, 1.4),
        (0.08, 0.15),
    ),
    "XRnanotech 3D test pattern": _Material(
        "A multi-level lithographic test pattern: line gratings of several periods, "
        "concentric rings and a stepped pyramid of nested squares.",
        "tungsten, three structure heights",
        (1.6, 2.4),
        (0.15, 0.3),
    ),
    "Integrated circuit": _Material(
        "An integrated circuit: dense Manhattan wiring on two metal layers (horizontal and "
        "vertical tracks), tungsten vias and wide power rails.",
        "copper wiring and tungsten vias in silicon dioxide",
        (2.0, 3.0),
        (0.35, 0.6),
    ),
    "E. coli in starch": _Material(
        "E. coli bacteria (rounded rods) embedded in a granular starch matrix; weak contrast.",
        "unstained biological material",
        (0.35, 0.6),
        (0.01, 0.03),
    ),
    "TiO2 in capillary": _Material(
        "TiO2 nanoparticle aggregates inside a glass capillary whose walls run vertically.",
        "titanium dioxide in borosilicate glass",
        (2.5, 3.5),
        (0.2, 0.35),
    ),
    "Supercrystal": _Material(
        "A nanoparticle supercrystal: a hexagonal lattice of gold nanoparticles with "
        "grains, grain boundaries and vacancies.",
        "gold nanoparticles with organic ligands",
        (1.0, 1.6),
        (0.1, 0.18),
    ),
    "Liquid-metal particles": _Material(
        "Large liquid-metal droplets with a thin oxide skin; projected phase far above "
        "2π and strong absorption.",
        "eutectic gallium-indium",
        (6.5, 8.5),
        (0.8, 1.4),
    ),
    "NCM battery particles": _Material(
        "NCM cathode secondary particles made of primary grains, with radial cracks.",
        "LiNi(x)Mn(y)Co(z)O2",
        (2.2, 3.4),
        (0.25, 0.45),
    ),
    "Bilayer WSe2": _Material(
        "A twisted bilayer WSe2 flake: two hexagonal lattices whose small twist makes a "
        "moiré superlattice; mono- and bilayer regions.",
        "tungsten diselenide",
        (0.3, 0.5),
        (0.01, 0.03),
    ),
    "LNO/CuS battery material": _Material(
        "A battery composite: polygonal LiNiO2 particles and clusters of hexagonal CuS platelets.",
        "LiNiO2 and copper sulfide",
        (2.2, 3.2),
        (0.25, 0.45),
    ),
    # the shifted set's sample types (see SHIFTED_SAMPLE_TYPES): no training sample has them
    "Porous glass": _Material(
        "Nanoporous Vycor-like glass: a bicontinuous network of silica and pores.",
        "silica glass",
        (1.2, 2.0),
        (0.05, 0.12),
    ),
    "Diatom frustule": _Material(
        "A diatom's silica shell: an oval valve with a rim, a central rib and rows of pores.",
        "biogenic silica",
        (0.9, 1.6),
        (0.03, 0.08),
    ),
    "Gold nanoparticles on membrane": _Material(
        "Dispersed gold nanoparticles of several sizes, some in small clusters, on a thin "
        "membrane.",
        "gold on silicon nitride",
        (1.4, 2.6),
        (0.12, 0.3),
    ),
}


# ---------------------------------------------------------------- sample generators


def _siemens_star(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    cy = size / 2 + rng.uniform(-0.05, 0.05) * size
    cx = size / 2 + rng.uniform(-0.05, 0.05) * size
    r = np.hypot(y - cy, x - cx)
    theta = np.arctan2(y - cy, x - cx) + rng.uniform(0, 2 * np.pi)
    n_spokes = int(rng.integers(16, 25)) * 2
    s = np.sin(n_spokes / 2 * theta)
    spokes = np.clip(0.5 + r * s / (n_spokes / 2), 0.0, 1.0)
    outer = 0.46 * size * rng.uniform(0.9, 1.1)
    shape = spokes * np.clip(outer - r + 0.5, 0.0, 1.0)
    for frac in rng.uniform(0.25, 0.8, 2):  # concentric gaps of the test pattern
        shape *= 1.0 - np.clip(1.5 - np.abs(r - frac * outer), 0.0, 1.0)
    shape *= 0.95 + 0.05 * _texture(size, rng, 2.0)
    return shape, shape


def _xrnanotech(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    half = size // 2
    heights = rng.permutation(np.array([1 / 3, 2 / 3, 1.0]))
    shape = np.zeros((size, size))
    # quadrant 0: vertical gratings of several periods, stacked in bands
    periods = rng.choice([3, 4, 5, 6, 8, 10], size=3, replace=False)
    band = half / 3
    for i, period in enumerate(periods):
        stripes = ((x + rng.integers(period)) % period < period / 2).astype(float)
        shape += heights[0] * stripes * _rectangle(y, x, i * band + 1, (i + 1) * band - 1, 1, half)
    # quadrant 1: horizontal gratings
    periods = rng.choice([3, 4, 5, 6, 8, 10], size=3, replace=False)
    for i, period in enumerate(periods):
        stripes = ((y + rng.integers(period)) % period < period / 2).astype(float)
        x0 = half + i * band
        shape += heights[1] * stripes * _rectangle(y, x, 1, half, x0 + 1, x0 + band - 1)
    # quadrant 2: concentric rings
    cy, cx = 1.5 * half, 0.5 * half
    r = np.hypot(y - cy, x - cx)
    ring_period = rng.uniform(4, 7)
    rings = np.clip(0.5 + 2 * np.sin(2 * np.pi * r / ring_period), 0.0, 1.0)
    shape += heights[2] * rings * _disc(y, x, cy, cx, 0.45 * half)
    # quadrant 3: stepped pyramid of nested squares (the "3D" part)
    cy, cx = 1.5 * half, 1.5 * half
    for step, level in enumerate((1 / 3, 2 / 3, 1.0)):
        w = 0.45 * half * (1 - step / 3.5)
        shape = np.maximum(shape, level * _rectangle(y, x, cy - w, cy + w, cx - w, cx + w))
    return shape, shape


def _wires(
    layer: FloatArray,
    rng: np.random.Generator,
    pitch: int,
    width: float,
    lengths: tuple[float, float],
    keep: float,
    *,
    horizontal: bool,
) -> FloatArray:
    """Broken Manhattan wires, one track every ``pitch`` pixels, added onto ``layer``."""
    size = layer.shape[0]
    y, x = _grid(size)
    for track in range(int(rng.integers(pitch)), size, pitch):
        start = float(rng.uniform(-size / 2, 0))
        while start < size:
            length = float(rng.uniform(*lengths) * size)
            if rng.random() < keep:
                across, along = (track, track + width), (start, start + length)
                box = (*across, *along) if horizontal else (*along, *across)
                layer = np.maximum(layer, _rectangle(y, x, *box))
            start += length + float(rng.uniform(3, 12))
    return layer


def _integrated_circuit(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    layer_h = np.zeros((size, size))
    layer_v = np.zeros((size, size))
    pitch_h, width_h = int(rng.integers(7, 10)), float(rng.uniform(2.5, 4.0))
    pitch_v, width_v = int(rng.integers(9, 14)), float(rng.uniform(3.5, 5.5))
    layer_h = _wires(layer_h, rng, pitch_h, width_h, (0.15, 0.6), 0.8, horizontal=True)
    layer_v = _wires(layer_v, rng, pitch_v, width_v, (0.1, 0.5), 0.7, horizontal=False)
    for _ in range(int(rng.integers(1, 3))):  # wide power rails on the lower layer
        rail = float(rng.uniform(0, size - 12))
        layer_h = np.maximum(layer_h, _rectangle(y, x, rail, rail + rng.uniform(7, 11), 0, size))
    vias = np.zeros((size, size))
    crossings = np.argwhere((layer_h > 0.9) & (layer_v > 0.9))
    if len(crossings):
        picks = crossings[rng.choice(len(crossings), min(len(crossings), size // 3), False)]
        for cy, cx in picks:
            vias = np.maximum(vias, _rectangle(y, x, cy - 1.5, cy + 1.5, cx - 1.5, cx + 1.5))
    phase = 0.45 * layer_h + 0.45 * layer_v + 0.4 * vias
    absorption = 0.35 * layer_h + 0.35 * layer_v + 0.8 * vias  # tungsten absorbs more
    return phase, absorption


def _ecoli_in_starch(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    starch = np.zeros((size, size))
    for _ in range(int(size * size / 900)):
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(6, 16)
        starch = np.maximum(starch, 0.6 * _sphere(y, x, cy, cx, r))
    starch = 0.25 * _smooth(starch, 1.5) + 0.08 * _texture(size, rng, 3.0)
    bacteria = np.zeros((size, size))
    for _ in range(int(rng.integers(3, 7) * (size / 128) ** 2) + 2):
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        angle = rng.uniform(0, np.pi)
        half_length = rng.uniform(6, 12)
        width = rng.uniform(6, 9)
        dy, dx = half_length * np.sin(angle), half_length * np.cos(angle)
        body = _segment(y, x, (cy - dy, cx - dx), (cy + dy, cx + dx), width)
        bacteria = np.maximum(bacteria, _smooth(body, 1.2))
    bacteria *= 0.9 + 0.1 * _texture(size, rng, 1.5)
    shape = starch + bacteria
    return shape, shape


def _tio2_in_capillary(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    centre = size / 2 + rng.uniform(-0.05, 0.05) * size
    r_out = size * rng.uniform(0.42, 0.5)
    r_in = r_out - size * rng.uniform(0.05, 0.08)
    d = x - centre
    glass = 2 * np.sqrt(np.clip(r_out**2 - d**2, 0, None))
    glass -= 2 * np.sqrt(np.clip(r_in**2 - d**2, 0, None))
    glass /= max(float(glass.max()), 1e-9)
    particles = np.zeros((size, size))
    for _ in range(int(rng.integers(5, 10) * (size / 128) ** 2) + 2):
        cy = rng.uniform(0, size)
        cx = centre + rng.uniform(-0.8, 0.8) * r_in
        for _ in range(int(rng.integers(4, 15))):  # an aggregate of small spheres
            py, px = cy + rng.normal(0, 5), cx + rng.normal(0, 5)
            if abs(px - centre) < r_in:
                particles += _sphere(y, x, py, px, rng.uniform(2, 4.5))
    particles = np.minimum(particles, 1.6)
    phase = 0.3 * glass + 0.6 * particles
    absorption = 0.1 * glass + 0.6 * particles  # TiO2 absorbs far more than glass
    return phase, absorption


def _supercrystal(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    period = rng.uniform(6, 8)
    radius = period * rng.uniform(0.36, 0.42)
    n_grains = int(rng.integers(3, 6))
    seeds = rng.uniform(0, size, (n_grains, 2))
    angles = rng.uniform(0, np.pi / 3, n_grains)
    owner = np.argmin((y[..., None] - seeds[:, 0]) ** 2 + (x[..., None] - seeds[:, 1]) ** 2, -1)
    shape = np.zeros((size, size))
    a1 = np.array([1.0, 0.0])
    a2 = np.array([0.5, np.sqrt(3) / 2])
    n_cells = int(size * 1.6 / period) + 2
    for grain, angle in enumerate(angles):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        i, j = np.meshgrid(np.arange(-n_cells, n_cells), np.arange(-n_cells, n_cells))
        points = (i.ravel()[:, None] * a1 + j.ravel()[:, None] * a2) * period @ rot.T
        points += seeds[grain]
        keep = (points.min(1) > -radius) & (points.max(1) < size + radius)
        keep &= rng.random(len(points)) > 0.03  # vacancies
        for py, px in points[keep] + rng.normal(0, 0.3, (int(keep.sum()), 2)):
            iy, ix = int(np.clip(round(py), 0, size - 1)), int(np.clip(round(px), 0, size - 1))
            if owner[iy, ix] != grain:
                continue
            lo_y, hi_y = max(int(py - radius - 1), 0), min(int(py + radius + 2), size)
            lo_x, hi_x = max(int(px - radius - 1), 0), min(int(px + radius + 2), size)
            if lo_y >= hi_y or lo_x >= hi_x:
                continue
            block = _sphere(y[lo_y:hi_y, lo_x:hi_x], x[lo_y:hi_y, lo_x:hi_x], py, px, radius)
            shape[lo_y:hi_y, lo_x:hi_x] = np.maximum(shape[lo_y:hi_y, lo_x:hi_x], block)
    island = _texture(size, rng, size / 6) > rng.uniform(0.25, 0.4)  # a supercrystal island
    shape *= _smooth(island.astype(float), 1.5)
    return shape, shape


def _liquid_metal(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    shape = np.zeros((size, size))
    skin = np.zeros((size, size))
    for _ in range(int(rng.integers(3, 7))):
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        r = rng.uniform(0.12, 0.3) * size
        shape += _sphere(y, x, cy, cx, r)
        skin += _sphere(y, x, cy, cx, r + 1.5) - _sphere(y, x, cy, cx, r)
    # droplets are band-limited by the optics; a sharp rim would alias the phase
    return _smooth(shape + 0.1 * skin, 1.0), _smooth(shape + 0.05 * skin, 1.0)


def _ncm_particles(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    shape = np.zeros((size, size))
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        r = rng.uniform(0.14, 0.3) * size
        box = (
            slice(max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size)),
            slice(max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size)),
        )
        by, bx = y[box], x[box]
        # primary grains: Voronoi cells with their own density and thin boundaries
        n_grains = int(np.pi * r * r / 60) + 4
        seeds = np.stack([cy + rng.uniform(-r, r, n_grains), cx + rng.uniform(-r, r, n_grains)], 1)
        d2 = (by[..., None] - seeds[:, 0]) ** 2 + (bx[..., None] - seeds[:, 1]) ** 2
        nearest = np.partition(d2, 1, axis=-1)
        gap = np.sqrt(nearest[..., 1]) - np.sqrt(nearest[..., 0])
        boundary = np.clip(gap / 1.5, 0.0, 1.0)
        density = rng.uniform(0.8, 1.0, n_grains)[np.argmin(d2, -1)]
        grains = np.zeros((size, size))
        grains[box] = _sphere(by, bx, cy, cx, r) * density * (0.75 + 0.25 * boundary)
        for _ in range(int(rng.integers(2, 6))):  # radial cracks from near the centre
            angle = rng.uniform(0, 2 * np.pi)
            start = rng.uniform(0, 0.3) * r
            end = rng.uniform(0.6, 1.1) * r
            p0 = (cy + start * np.sin(angle), cx + start * np.cos(angle))
            bend = angle + rng.normal(0, 0.15)
            p1 = (cy + end * np.sin(bend), cx + end * np.cos(bend))
            grains *= 1.0 - _segment(y, x, p0, p1, rng.uniform(1.0, 2.2))
        shape = np.maximum(shape, grains)
    return shape, shape


def _bilayer_wse2(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    period = rng.uniform(4.0, 5.0)
    angle = rng.uniform(0, np.pi / 3)
    twist = np.deg2rad(rng.uniform(2.5, 5.0))
    bottom = _hex_lattice(y, x, period, angle)
    top = _hex_lattice(y, x, period, angle + twist)
    flake = _texture(size, rng, size / 5)
    bottom_region = _smooth((flake > 0.25).astype(float), 1.0)
    top_region = _smooth((flake > 0.45).astype(float), 1.0)
    shape = bottom_region * (0.5 + 0.5 * bottom) + top_region * (0.5 + 0.5 * top)
    return shape, shape


def _lno_cus(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    lno = np.zeros((size, size))
    for _ in range(int(rng.integers(4, 8) * (size / 128) ** 2) + 2):
        cy, cx = rng.uniform(0, size, 2)
        verts = _regular_polygon(
            cy, cx, rng.uniform(8, 18), int(rng.integers(5, 8)), rng.uniform(0, 2 * np.pi), 0.6, rng
        )
        lno = np.maximum(lno, _smooth(_polygon(y, x, verts), 0.8) * rng.uniform(0.7, 1.0))
    cus = np.zeros((size, size))
    for _ in range(int(rng.integers(2, 4) * (size / 128) ** 2) + 1):
        cy, cx = rng.uniform(0, size, 2)
        for _ in range(int(rng.integers(5, 10))):  # a rosette of thin hexagonal platelets
            py, px = cy + rng.normal(0, 6), cx + rng.normal(0, 6)
            verts = _regular_polygon(py, px, rng.uniform(4, 8), 6, rng.uniform(0, np.pi), 0.1, rng)
            cus += 0.35 * _polygon(y, x, verts)
    cus = np.minimum(cus, 1.2)
    phase = 0.8 * lno + 0.5 * cus
    absorption = 0.5 * lno + 0.9 * cus  # copper absorbs more per phase than LNO
    return phase, absorption


def _porous_glass(size: int, rng: np.random.Generator) -> Maps:
    network = _texture(size, rng, rng.uniform(3.5, 5.5))  # pores well above the resolution
    walls = _smooth((np.abs(network - rng.uniform(0.45, 0.55)) < 0.15).astype(float), 1.0)
    slab = 0.6 + 0.4 * _texture(size, rng, size / 4)  # thickness varies across the field
    shape = walls * slab
    return shape, shape


def _diatom(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    cy, cx = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
    a, b = rng.uniform(0.26, 0.34) * size, rng.uniform(0.15, 0.22) * size  # in the scan
    angle = rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    r = np.hypot(u / a, v / b)
    valve = np.clip((1 - r) * min(a, b) + 0.5, 0.0, 1.0)
    rim = np.clip(1.0 - np.abs(r - 0.95) * min(a, b) / 2.0, 0.0, 1.0)
    rib = np.clip(1.5 - np.abs(v), 0.0, 1.0) * valve
    pitch = rng.uniform(8.0, 11.0)  # pore rows a few resolution elements apart
    pores = (np.cos(2 * np.pi * u / pitch) * np.cos(2 * np.pi * v / pitch) > 0.55).astype(float)
    shape = valve * (0.55 + 0.45 * (1 - _smooth(pores, 0.6))) + 0.5 * rim + 0.4 * rib
    return shape, shape


def _gold_nanoparticles(size: int, rng: np.random.Generator) -> Maps:
    y, x = _grid(size)
    shape = np.zeros((size, size))
    for _ in range(int(rng.integers(8, 18) * (size / 128) ** 2) + 3):
        cy, cx = rng.uniform(0, size, 2)
        for _ in range(int(rng.choice([1, 1, 1, 2, 3, 5]))):  # some in small clusters
            r = rng.uniform(3.0, 8.0)
            py, px = cy + rng.normal(0, 5), cx + rng.normal(0, 5)
            shape = np.maximum(shape, _sphere(y, x, py, px, r) * rng.uniform(0.6, 1.0))
    membrane = 0.04 * _texture(size, rng, 3.0)
    return _smooth(shape, 0.5) + membrane, _smooth(shape, 0.5)


_GENERATORS: Final[dict[str, Callable[[int, np.random.Generator], Maps]]] = {
    "Siemens star": _siemens_star,
    "XRnanotech 3D test pattern": _xrnanotech,
    "Integrated circuit": _integrated_circuit,
    "E. coli in starch": _ecoli_in_starch,
    "TiO2 in capillary": _tio2_in_capillary,
    "Supercrystal": _supercrystal,
    "Liquid-metal particles": _liquid_metal,
    "NCM battery particles": _ncm_particles,
    "Bilayer WSe2": _bilayer_wse2,
    "LNO/CuS battery material": _lno_cus,
    "Porous glass": _porous_glass,
    "Diatom frustule": _diatom,
    "Gold nanoparticles on membrane": _gold_nanoparticles,
}

SHIFTED_SAMPLE_TYPES: Final[tuple[str, ...]] = (
    "Porous glass",
    "Diatom frustule",
    "Gold nanoparticles on membrane",
)
"""Sample types that only the shifted test set has (no training sample is of them)."""
SAMPLE_TYPES: Final[tuple[str, ...]] = tuple(
    name for name in _GENERATORS if name not in SHIFTED_SAMPLE_TYPES
)


def _material(sample_type: str) -> _Material:
    try:
        return _MATERIALS[sample_type]
    except KeyError:
        raise ValueError(
            f"unknown sample type {sample_type!r}; expected one of {SAMPLE_TYPES}"
        ) from None


def make_object(
    sample_type: str,
    size: int,
    rng: np.random.Generator,
    phase_scale: float = 1.0,
    absorption_scale: float = 1.0,
) -> ComplexArray:
    """A ``(size, size)`` complex64 transmission ``exp(i·phase − absorption)``.

    The maximum phase and absorption are drawn from the sample type's ranges (see
    :func:`object_metadata`), times ``phase_scale`` and ``absorption_scale`` (a thicker
    or thinner specimen of the same kind); the minimum of both is 0 (empty regions
    transmit fully).
    """
    material = _material(sample_type)
    if size < 16:
        raise ValueError(f"object size must be at least 16 pixels, got {size}")
    phase_shape, absorption_shape = _GENERATORS[sample_type](size, rng)
    phase_max = rng.uniform(*material.phase_max)
    absorption_max = rng.uniform(*material.absorption_max)
    phase = _unit_max(phase_shape) * phase_max * phase_scale
    absorption = _unit_max(absorption_shape) * absorption_max * absorption_scale
    transmission: ComplexArray = np.exp(1j * phase - absorption).astype(np.complex64)
    return transmission


def _unit_max(shape: FloatArray) -> FloatArray:
    shape = np.clip(shape, 0.0, None)
    peak = float(shape.max())
    return shape / peak if peak > 0 else shape


def object_metadata(sample_type: str) -> ObjectMetadata:
    """What a caption needs to say about a sample type: description, material, ranges."""
    material = _material(sample_type)
    return {
        "sample_type": sample_type,
        "description": material.description,
        "material": material.material,
        "phase_range_rad": (0.0, material.phase_max[1]),
        "absorption_range": (0.0, material.absorption_max[1]),
        "strong_phase": bool(material.phase_max[1] > 2 * np.pi),
    }
