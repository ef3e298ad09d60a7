"""Drawing primitives of the test objects (:mod:`ptychobench.sim.objects`): a pixel grid,
smoothing, random texture, discs, spheres, polygons, rectangles, segments, a hexagonal
lattice. Pure numpy; every random draw comes from the generator it is given.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _grid(size: int) -> tuple[FloatArray, FloatArray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return y, x


def _smooth(image: FloatArray, sigma: float) -> FloatArray:
    """Gaussian blur by FFT (periodic boundaries; fine for textures)."""
    if sigma <= 0:
        return image
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    return np.fft.ifft2(np.fft.fft2(image) * kernel).real


def _texture(size: int, rng: np.random.Generator, sigma: float) -> FloatArray:
    """Smooth random field scaled to [0, 1]."""
    field = _smooth(rng.standard_normal((size, size)), sigma)
    return _unit(field)


def _unit(image: FloatArray) -> FloatArray:
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _disc(y: FloatArray, x: FloatArray, cy: float, cx: float, r: float) -> FloatArray:
    """Anti-aliased filled disc (coverage 0..1)."""
    return np.clip(r - np.hypot(y - cy, x - cx) + 0.5, 0.0, 1.0)


def _sphere(y: FloatArray, x: FloatArray, cy: float, cx: float, r: float) -> FloatArray:
    """Projected thickness of a sphere, 1 at its centre."""
    d2 = (y - cy) ** 2 + (x - cx) ** 2
    return np.sqrt(np.clip(1.0 - d2 / (r * r), 0.0, None))


def _polygon(y: FloatArray, x: FloatArray, vertices: FloatArray) -> FloatArray:
    """Anti-aliased convex polygon; ``vertices`` (n, 2) as (y, x), counter-clockwise."""
    inside = np.full(y.shape, np.inf)
    n = len(vertices)
    for i in range(n):
        (y0, x0), (y1, x1) = vertices[i], vertices[(i + 1) % n]
        ey, ex = y1 - y0, x1 - x0
        length = np.hypot(ey, ex)
        # signed distance, positive on the inner side of a counter-clockwise edge
        distance = ((x - x0) * ey - (y - y0) * ex) / length
        inside = np.minimum(inside, distance)
    return np.clip(inside + 0.5, 0.0, 1.0)


def _regular_polygon(
    cy: float, cx: float, r: float, n: int, angle: float, jitter: float, rng: np.random.Generator
) -> FloatArray:
    angles = angle + np.arange(n) * 2 * np.pi / n
    angles = angles + rng.uniform(-jitter, jitter, n) * np.pi / n
    angles = np.sort(angles)
    # angles counter-clockwise in (x, y) with y pointing down -> reverse for our convention
    verts = np.stack([cy + r * np.sin(angles), cx + r * np.cos(angles)], axis=1)
    return verts[::-1].copy()


def _rectangle(
    y: FloatArray, x: FloatArray, y0: float, y1: float, x0: float, x1: float
) -> FloatArray:
    """Anti-aliased axis-aligned rectangle covering [y0, y1) × [x0, x1)."""
    cover_y = np.clip(np.minimum(y + 1 - y0, y1 - y), 0.0, 1.0)
    cover_x = np.clip(np.minimum(x + 1 - x0, x1 - x), 0.0, 1.0)
    coverage: FloatArray = cover_y * cover_x
    return coverage


def _segment(
    y: FloatArray, x: FloatArray, p0: tuple[float, float], p1: tuple[float, float], width: float
) -> FloatArray:
    """Anti-aliased line segment of a given width (a capsule)."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx
    t = np.clip(((y - y0) * dy + (x - x0) * dx) / max(length2, 1e-12), 0.0, 1.0)
    distance = np.hypot(y - (y0 + t * dy), x - (x0 + t * dx))
    return np.clip(width / 2 - distance + 0.5, 0.0, 1.0)


def _hex_lattice(y: FloatArray, x: FloatArray, period: float, angle: float) -> FloatArray:
    """Positive hexagonal lattice intensity (three plane waves), scaled to [0, 1]."""
    k = 4 * np.pi / (np.sqrt(3) * period)
    total = np.zeros_like(y)
    for i in range(3):
        a = angle + i * 2 * np.pi / 3
        total += np.cos(k * (x * np.cos(a) + y * np.sin(a)))
    return (total + 1.5) / 4.5


__all__: list[str] = []  # a private module: its names are ptychobench.sim.objects's
