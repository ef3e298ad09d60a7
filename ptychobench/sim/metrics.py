"""Image metrics that confirm an artifact label against the truth and a clean reconstruction.

Every metric compares a reconstruction ``recon`` with the true object ``truth`` inside
the scanned region (``mask``), after removing the one ambiguity every ptychographic
reconstruction has, a constant phase. A label is confirmed by comparing a metric of the
faulted reconstruction with the same metric of a clean reconstruction of the same object
(:func:`image_metrics` gives all of them; the fault recipes say which one and how far).

Numpy only: the metrics run where Pty-chi is not installed (tests, the gateway).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

METRIC_NAMES: Final[tuple[str, ...]] = (
    "nrmse",
    "correlation",
    "contrast",
    "sharpness",
    "noise_power",
    "ramp_slope",
    "background",
    "grid_power",
    "line_shift",
    "low_freq_transfer",
    "halo_slope",
    "residues",
)
"""What :func:`image_metrics` returns, in a stable order (see each function)."""


def scan_mask(
    shape: tuple[int, int],
    positions: npt.ArrayLike,
    probe_size: int,
    shrink: float = 0.3,
) -> npt.NDArray[np.bool_]:
    """Pixels well inside the scanned area: within the positions' bounding box grown by
    ``(0.5 − shrink)`` probe widths (the rim, seen by few positions, is left out)."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    grow = (0.5 - shrink) * probe_size
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    y -= shape[0] / 2
    x -= shape[1] / 2
    mask: npt.NDArray[np.bool_] = (
        (y >= pos[:, 0].min() - grow)
        & (y <= pos[:, 0].max() + grow)
        & (x >= pos[:, 1].min() - grow)
        & (x <= pos[:, 1].max() + grow)
    )
    if mask.sum() < 64:
        raise ValueError("the scanned area is too small to measure")
    return mask


def crop(image: npt.ArrayLike, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.generic]:
    """The bounding box of ``mask`` cut out of ``image`` (masks here are rectangles)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.asarray(image)[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def align_phase(recon: npt.ArrayLike, truth: npt.ArrayLike) -> ComplexArray:
    """``recon`` times the constant phase factor that best matches it to ``truth``."""
    r = np.asarray(recon, dtype=np.complex128)
    t = np.asarray(truth, dtype=np.complex128)
    overlap = np.vdot(r, t)  # Σ conj(r)·t
    factor = overlap / abs(overlap) if abs(overlap) > 0 else 1.0
    aligned: ComplexArray = r * factor
    return aligned


def gaussian_blur(image: npt.ArrayLike, sigma: float) -> FloatArray:
    """Gaussian low-pass by FFT (periodic edges; used on crops well inside the scan)."""
    a = np.asarray(image, dtype=np.float64)
    fy = np.fft.fftfreq(a.shape[0])[:, None]
    fx = np.fft.fftfreq(a.shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2))
    blurred: FloatArray = np.real(np.fft.ifft2(np.fft.fft2(a) * kernel))
    return blurred


def _power_spectrum(image: FloatArray | ComplexArray) -> tuple[FloatArray, FloatArray]:
    """Power of the Hann-windowed, mean-free image (real or complex), and each
    frequency's radius."""
    h, w = image.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power: FloatArray = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    return power, radius


def _band(power: FloatArray, radius: FloatArray, low: float, high: float) -> float:
    return float(power[(radius >= low) & (radius < high)].sum())


def phase_error(recon: ComplexArray, truth: ComplexArray) -> FloatArray:
    """Wrapped phase of ``recon · conj(truth)``: zero where the phase is right."""
    error: FloatArray = np.angle(recon * np.conj(truth))
    return error


def ramp_slope(recon: ComplexArray, truth: ComplexArray) -> float:
    """Size of the linear phase ramp of ``recon`` against ``truth``, rad per pixel.

    The mean phase step between neighbours of ``recon · conj(truth)`` along each axis
    (no unwrapping needed); a constant offset gives 0.
    """
    return float(np.hypot(*_ramp(recon, truth)))


def _ramp(recon: ComplexArray, truth: ComplexArray) -> tuple[float, float]:
    """(y, x) phase steps per pixel of ``recon · conj(truth)``, averaged over the image."""
    z = recon * np.conj(truth)
    gy = np.angle(np.sum(z[1:, :] * np.conj(z[:-1, :])))
    gx = np.angle(np.sum(z[:, 1:] * np.conj(z[:, :-1])))
    return float(gy), float(gx)


def _deramp(recon: ComplexArray, truth: ComplexArray) -> ComplexArray:
    """``recon`` with its linear phase ramp against ``truth`` removed (for other metrics)."""
    gy, gx = _ramp(recon, truth)
    y, x = np.mgrid[0 : recon.shape[0], 0 : recon.shape[1]]
    flat: ComplexArray = recon * np.exp(-1j * (gy * y + gx * x))
    return align_phase(flat, truth)


def grid_power(error: FloatArray, step: float, reference: FloatArray | None = None) -> float:
    """Power of the phase error at the scan grid's frequency and its harmonics (± 1
    frequency sample around ``k/step`` along either axis, k = 1, 2), as a share of the
    power of ``reference`` (the true phase) or, without one, of the error itself."""
    power, _ = _power_spectrum(error)
    h, w = error.shape
    fy = np.abs(np.fft.fftfreq(h))[:, None]
    fx = np.abs(np.fft.fftfreq(w))[None, :]
    near = np.zeros(power.shape, dtype=bool)
    for k in (1, 2):
        f = k / step
        if f >= 0.5:
            continue
        near |= (np.abs(fy - f) <= 1.0 / h) & (fx <= 1.5 / w)
        near |= (np.abs(fx - f) <= 1.0 / w) & (fy <= 1.5 / h)
        near |= (np.abs(fy - f) <= 1.0 / h) & (np.abs(fx - f) <= 1.0 / w)
    total = float(power.sum() if reference is None else _power_spectrum(reference)[0].sum())
    return float(power[near].sum()) / total if total > 0 else 0.0


def line_shift(recon_phase: FloatArray, truth_phase: FloatArray, band: int = 4) -> float:
    """Rms, over row bands, of each band's x-shift against the truth, detrended (px).

    Fly-scan line lag shifts whole scan rows along the fast axis: edges zig-zag from one
    band to the next. Each band's shift is the peak of its cross-correlation with the
    truth (parabolic sub-pixel fit); a linear trend over the bands (shear) is removed.
    """
    shifts = []
    for top in range(0, recon_phase.shape[0] - band + 1, band):
        r = recon_phase[top : top + band].mean(axis=0)
        t = truth_phase[top : top + band].mean(axis=0)
        r, t = r - r.mean(), t - t.mean()
        if t.std() < 1e-6 * (np.abs(truth_phase).max() + 1e-12):
            continue  # nothing to line up in this band
        n = len(r)
        xc = np.real(np.fft.ifft(np.fft.fft(r, 2 * n) * np.conj(np.fft.fft(t, 2 * n))))
        xc = np.concatenate([xc[-4:], xc[:5]])  # lags −4 … 4
        i = int(np.argmax(xc))
        offset = 0.0
        if 0 < i < len(xc) - 1:
            a, b, c = xc[i - 1], xc[i], xc[i + 1]
            denom = a - 2 * b + c
            offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
        shifts.append(i - 4 + offset)
    if len(shifts) < 3:
        return 0.0
    s = np.asarray(shifts)
    k = np.arange(len(s))
    s = s - np.polyval(np.polyfit(k, s, 1), k)
    return float(np.sqrt(np.mean(s**2)))


def halo(
    recon_phase: FloatArray, truth_phase: FloatArray, sigma: float = 8.0
) -> tuple[float, float]:
    """(low-frequency transfer, halo slope) of the phase.

    A halo is missing low spatial frequencies: dark rims around features. Transfer is
    the regression slope of the low-passed reconstruction on the low-passed truth (1 =
    all there); the halo slope is the slope of the low-passed error on the low-passed
    truth (negative when features sink into their surroundings).
    """
    r = gaussian_blur(recon_phase - recon_phase.mean(), sigma)
    t = gaussian_blur(truth_phase - truth_phase.mean(), sigma)
    denom = float(np.sum(t * t))
    if denom <= 0:
        return 1.0, 0.0
    transfer = float(np.sum(r * t)) / denom
    return transfer, transfer - 1.0


def residue_count(phase: FloatArray) -> int:
    """Phase vortices: 2×2 loops whose wrapped phase steps sum to ±2π (there are
    ``phase[1:, 1:].size`` loops)."""

    def wrap(a: FloatArray) -> FloatArray:
        wrapped: FloatArray = (a + np.pi) % (2 * np.pi) - np.pi
        return wrapped

    loop = (
        wrap(phase[:-1, 1:] - phase[:-1, :-1])
        + wrap(phase[1:, 1:] - phase[:-1, 1:])
        + wrap(phase[1:, :-1] - phase[1:, 1:])
        + wrap(phase[:-1, :-1] - phase[1:, :-1])
    )
    return int(np.count_nonzero(np.abs(loop) > np.pi))


def residues(recon: ComplexArray) -> float:
    """Phase vortices per 1000 pixels: 2×2 loops whose wrapped phase steps sum to ±2π."""
    phase = np.angle(recon)
    return 1000.0 * residue_count(phase) / phase[1:, 1:].size


def image_metrics(
    recon: npt.ArrayLike,
    truth: npt.ArrayLike,
    mask: npt.NDArray[np.bool_],
    scan_step: float,
) -> dict[str, float]:
    """All metrics of :data:`METRIC_NAMES` for a reconstruction of ``truth``.

    - ``nrmse``: complex NRMSE after the constant phase is removed;
    - ``correlation``: magnitude of the normalised complex correlation with the truth
      (structure; complex, so phase wrapping of strong objects does not matter);
    - ``contrast``: the object's deviation from its mean relative to the truth's;
    - ``sharpness``: mid-band (0.1–0.3 cycles/px) power of the complex object relative
      to the truth's (blur lowers it, noise raises it);
    - ``noise_power``: high-band (> 0.3 cycles/px) power of the phase error relative to
      the truth's mid-band power;
    - ``ramp_slope``: linear phase ramp, rad/px;
    - ``background``: standard deviation of the low-passed (σ 6 px) phase error, rad;
    - ``grid_power``: phase error power at scan-grid frequencies, as a share of the
      truth's phase power;
    - ``line_shift``: rms row-band shift against the truth, px;
    - ``low_freq_transfer``, ``halo_slope``: see :func:`halo`;
    - ``residues``: phase vortices per 1000 px.

    Metrics other than ``ramp_slope`` are taken after the ramp is removed, so that one
    fault does not show up in every metric.
    """
    r_full = np.asarray(recon, dtype=np.complex128)
    t_full = np.asarray(truth, dtype=np.complex128)
    if r_full.shape != t_full.shape or r_full.shape != mask.shape:
        raise ValueError(
            f"recon {r_full.shape}, truth {t_full.shape} and mask {mask.shape} must match"
        )
    t = np.asarray(crop(t_full, mask), dtype=np.complex128)
    r = align_phase(np.asarray(crop(r_full, mask), dtype=np.complex128), t)
    slope = ramp_slope(r, t)
    r = _deramp(r, t)
    r_phase = np.angle(r * np.conj(np.mean(t)))  # phase about the truth's mean phase
    t_phase = np.angle(t * np.conj(np.mean(t)))
    error = phase_error(r, t)
    t_power, radius = _power_spectrum(t_phase)
    e_power, _ = _power_spectrum(error)
    t_mid = _band(t_power, radius, 0.1, 0.3) + 1e-12
    r_dev, t_dev = r - r.mean(), t - t.mean()
    t_norm = float(np.linalg.norm(t_dev)) + 1e-12
    corr = abs(np.vdot(t_dev, r_dev)) / (t_norm * (float(np.linalg.norm(r_dev)) + 1e-12))
    c_power, _ = _power_spectrum(r_dev)
    ct_power, _ = _power_spectrum(t_dev)
    transfer, halo_slope = halo(r_phase, t_phase)
    return {
        "nrmse": float(np.linalg.norm(r - t) / (np.linalg.norm(t) + 1e-12)),
        "correlation": float(corr),
        "contrast": float(np.linalg.norm(r_dev)) / t_norm,
        "sharpness": _band(c_power, radius, 0.1, 0.3) / (_band(ct_power, radius, 0.1, 0.3) + 1e-12),
        "noise_power": _band(e_power, radius, 0.3, 0.75) / t_mid,
        "ramp_slope": slope,
        "background": float(gaussian_blur(error, 6.0).std()),
        "grid_power": grid_power(error, scan_step, t_phase),
        "line_shift": line_shift(r_phase, t_phase),
        "low_freq_transfer": transfer,
        "halo_slope": halo_slope,
        "residues": residues(np.asarray(crop(r_full, mask), dtype=np.complex128)),
    }
