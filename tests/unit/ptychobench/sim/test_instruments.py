from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptychobench.sim.forward import window_origin
from ptychobench.sim.instruments import (
    INSTRUMENTS,
    Instrument,
    make_probe,
    make_probe_modes,
    make_scan,
    mode_powers,
    wavelength_m,
)


def rms_radius(probe: np.ndarray) -> float:
    weight = np.abs(probe) ** 2
    y, x = np.mgrid[0 : probe.shape[0], 0 : probe.shape[1]]
    cy, cx = (weight * y).sum() / weight.sum(), (weight * x).sum() / weight.sum()
    return float(np.sqrt((weight * ((y - cy) ** 2 + (x - cx) ** 2)).sum() / weight.sum()))


def test_the_named_beamlines_exist_and_cover_every_kind() -> None:
    assert {"APS-2IDE-XFM", "Velociprobe", "Bionanoprobe", "2-ID-D"} <= set(INSTRUMENTS)
    assert {i.probe_kind for i in INSTRUMENTS.values()} == {"zone_plate", "defocused", "gaussian"}
    assert {i.scan_kind for i in INSTRUMENTS.values()} == {"fermat", "raster"}
    for name, instrument in INSTRUMENTS.items():
        assert instrument.name == name
        assert instrument.photons_per_pattern > 0
        assert instrument.step_px > 0


def test_instruments_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        INSTRUMENTS["2-ID-D"].step_px = 3.0  # type: ignore[misc]


def test_wavelength_at_10_kev() -> None:
    assert wavelength_m(10.0) == pytest.approx(1.2398e-10, rel=1e-4)


@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_probe_is_normalised_deterministic_and_centred(name: str) -> None:
    instrument = INSTRUMENTS[name]
    probe = make_probe(instrument, 64, np.random.default_rng(1))
    assert probe.shape == (64, 64)
    assert probe.dtype == np.complex64
    assert np.sum(np.abs(probe) ** 2) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(probe, make_probe(instrument, 64, np.random.default_rng(1)))
    assert not np.allclose(probe, make_probe(instrument, 64, np.random.default_rng(2)))
    weight = np.abs(probe) ** 2
    y, x = np.mgrid[0:64, 0:64]
    assert abs((weight * y).sum() - 32) < 4
    assert abs((weight * x).sum() - 32) < 4
    assert 2.0 < rms_radius(probe) < 20.0  # fits the window with room for the scan


def test_zone_plate_pupil_has_a_central_stop() -> None:
    far_field = np.abs(
        np.fft.fft2(make_probe(INSTRUMENTS["APS-2IDE-XFM"], 64, np.random.default_rng(0)))
    )
    assert far_field[0, 0] < 0.05 * far_field.max()
    gaussian = np.abs(np.fft.fft2(make_probe(INSTRUMENTS["26-ID-C"], 64, np.random.default_rng(0))))
    assert gaussian[0, 0] > 0.9 * gaussian.max()


def test_defocus_widens_the_beam() -> None:
    instrument = INSTRUMENTS["2-ID-D"]
    sizes = [
        rms_radius(
            make_probe(instrument, 64, np.random.default_rng(0), defocus=z, aberration_rad=0)
        )
        for z in (10.0, 40.0, 80.0)
    ]
    assert sizes[0] < sizes[1] < sizes[2]


@given(n_modes=st.integers(1, 6), coherence=st.floats(0.3, 1.0))
@settings(max_examples=25, deadline=None)
def test_probe_modes_are_orthogonal_with_decreasing_power(n_modes: int, coherence: float) -> None:
    probe = make_probe(INSTRUMENTS["Velociprobe"], 32, np.random.default_rng(0)) * 3.0
    modes = make_probe_modes(probe, n_modes, coherence)
    assert modes.shape == (n_modes, 32, 32)
    assert modes.dtype == np.complex64
    gram = np.einsum("ihw,jhw->ij", modes.conj(), modes.astype(np.complex128))
    powers = np.real(np.diag(gram))
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-5 * powers.sum())
    assert powers.sum() == pytest.approx(9.0, rel=1e-4)  # power of the input probe
    np.testing.assert_allclose(powers / powers.sum(), mode_powers(n_modes, coherence), atol=1e-5)
    # mode 0 keeps the probe's shape
    overlap = abs(np.vdot(modes[0], probe)) / (np.linalg.norm(modes[0]) * np.linalg.norm(probe))
    assert overlap == pytest.approx(1.0, abs=1e-5)


def test_mode_powers() -> None:
    powers = mode_powers(4, 0.7)
    assert powers[0] == pytest.approx(0.7)
    assert powers.sum() == pytest.approx(1.0)
    assert np.all(np.diff(powers) < 0)
    with pytest.raises(ValueError, match="coherence"):
        mode_powers(2, 0.0)


@given(
    name=st.sampled_from(sorted(INSTRUMENTS)),
    object_size=st.integers(40, 160).map(lambda n: 2 * n),
    probe_size=st.sampled_from([16, 32, 64]),
    step=st.floats(3.0, 15.0),
    seed=st.integers(0, 5),
)
@settings(max_examples=60, deadline=None)
def test_scan_stays_inside_the_object(
    name: str, object_size: int, probe_size: int, step: float, seed: int
) -> None:
    if object_size < probe_size + 8:
        return
    scan = make_scan(
        INSTRUMENTS[name], object_size, probe_size, np.random.default_rng(seed), step_px=step
    )
    assert scan.ndim == 2
    assert scan.shape[1] == 2
    assert len(scan) >= 1
    origin = window_origin(scan, (object_size, object_size), (probe_size, probe_size))
    assert origin.min() >= 0
    assert (origin + probe_size).max() <= object_size


@pytest.mark.parametrize("name", ["APS-2IDE-XFM", "Velociprobe"])
def test_scan_spacing_matches_the_step(name: str) -> None:
    instrument = INSTRUMENTS[name]
    scan = make_scan(instrument, 256, 64, np.random.default_rng(0))
    distance = np.hypot(*(scan[:, None, :] - scan[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(distance, np.inf)
    nearest = np.median(distance.min(1))
    assert nearest == pytest.approx(instrument.step_px, rel=0.25)
    assert abs(scan.mean(0)).max() < instrument.step_px  # centred on the object


def test_raster_is_a_snake() -> None:
    scan = make_scan(INSTRUMENTS["2-ID-D"], 128, 32, np.random.default_rng(0))
    steps = np.hypot(*np.diff(scan, axis=0).T)
    np.testing.assert_allclose(steps, INSTRUMENTS["2-ID-D"].step_px)  # never a fly-back


def test_scan_refuses_a_probe_larger_than_the_object() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        make_scan(INSTRUMENTS["2-ID-D"], 64, 64, np.random.default_rng(0))


def test_custom_instrument() -> None:
    custom = Instrument("X", 12.0, "gaussian", "raster", 5.0, 1e4, 1, pupil_radius=0.05)
    probe = make_probe(custom, 32, np.random.default_rng(0))
    assert np.sum(np.abs(probe) ** 2) == pytest.approx(1.0, rel=1e-5)
