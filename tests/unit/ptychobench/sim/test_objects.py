from __future__ import annotations

import itertools

import numpy as np
import pytest

from ptychobench.sim.objects import SAMPLE_TYPES, make_object, object_metadata

REQUIRED = (
    "Siemens star",
    "XRnanotech 3D test pattern",
    "Integrated circuit",
    "E. coli in starch",
    "TiO2 in capillary",
    "Supercrystal",
    "Liquid-metal particles",
    "NCM battery particles",
    "Bilayer WSe2",
    "LNO/CuS battery material",
)


def obj(sample_type: str, seed: int = 0, size: int = 96) -> np.ndarray:
    return make_object(sample_type, size, np.random.default_rng(seed))


def test_all_required_sample_types_exist() -> None:
    assert set(REQUIRED) <= set(SAMPLE_TYPES)
    assert len(SAMPLE_TYPES) == len(set(SAMPLE_TYPES))


@pytest.mark.parametrize("sample_type", SAMPLE_TYPES)
def test_object_is_a_passive_complex64_transmission(sample_type: str) -> None:
    o = obj(sample_type)
    assert o.shape == (96, 96)
    assert o.dtype == np.complex64
    assert np.all(np.isfinite(o))
    assert np.abs(o).max() <= 1.0 + 1e-6  # no gain
    assert np.abs(o).max() > 0.999  # empty regions transmit


@pytest.mark.parametrize("sample_type", SAMPLE_TYPES)
def test_object_is_deterministic_per_seed(sample_type: str) -> None:
    np.testing.assert_array_equal(obj(sample_type, 7), obj(sample_type, 7))
    assert not np.allclose(obj(sample_type, 7), obj(sample_type, 8))


@pytest.mark.parametrize("sample_type", SAMPLE_TYPES)
def test_absorption_and_weak_phase_stay_in_the_declared_range(sample_type: str) -> None:
    meta = object_metadata(sample_type)
    absorption = -np.log(np.abs(obj(sample_type)))
    low, high = meta["absorption_range"]
    assert absorption.min() >= low - 1e-5
    assert absorption.max() <= high + 1e-5
    assert absorption.max() > 0.3 * high  # the range is used, not just bounded
    phase_high = meta["phase_range_rad"][1]
    if phase_high < np.pi:  # below π the wrapped phase is the phase
        phase = np.angle(obj(sample_type))
        assert phase.min() >= -1e-5
        assert phase.max() <= phase_high + 1e-5


def test_sample_types_look_different() -> None:
    objects = {t: obj(t, 3) for t in SAMPLE_TYPES}
    for a, b in itertools.combinations(SAMPLE_TYPES, 2):
        assert np.mean(np.abs(objects[a] - objects[b])) > 0.05, (a, b)


def test_liquid_metal_is_strongly_phase_shifting_and_absorbing() -> None:
    strong = [t for t in SAMPLE_TYPES if object_metadata(t)["strong_phase"]]
    assert strong == ["Liquid-metal particles"]
    o = obj("Liquid-metal particles")
    assert (-np.log(np.abs(o))).max() > 0.75  # under half the amplitude gets through
    # a phase far above 2π wraps: the wrapped phase spans the whole circle
    assert np.ptp(np.angle(o)) > 6.0


def _axis_gradient_share(o: np.ndarray) -> float:
    """Share of the gradient energy along the x or y axis (complex field, no wrapping)."""
    gy, gx = np.abs(np.diff(o, axis=0)[:, :-1]), np.abs(np.diff(o, axis=1)[:-1, :])
    energy = gy**2 + gx**2
    on_axis = np.minimum(np.abs(gy), np.abs(gx)) < 0.1 * np.hypot(gy, gx)
    return float(energy[on_axis].sum() / energy.sum())


def test_integrated_circuit_is_manhattan_and_particles_are_not() -> None:
    for seed in range(3):
        assert _axis_gradient_share(obj("Integrated circuit", seed)) > 0.6
        assert _axis_gradient_share(obj("NCM battery particles", seed)) < 0.45


def test_siemens_star_has_periodic_spokes() -> None:
    o = obj("Siemens star", size=128)
    phase = np.angle(o)
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    # a ring at mid radius around the (jittered) centre of mass
    weight = phase / phase.sum()
    y, x = np.mgrid[0:128, 0:128]
    cy, cx = (weight * y).sum(), (weight * x).sum()
    ring = phase[
        np.rint(cy + 30 * np.sin(angles)).astype(int), np.rint(cx + 30 * np.cos(angles)).astype(int)
    ]
    spectrum = np.abs(np.fft.rfft(ring - ring.mean()))
    assert 16 <= int(np.argmax(spectrum)) <= 24  # 16–24 spoke pairs


def test_bilayer_wse2_has_a_lattice_peak() -> None:
    phase = np.angle(obj("Bilayer WSe2", size=128))
    power = np.abs(np.fft.fft2(phase - phase.mean())) ** 2
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    lattice = power[(freq > 1 / 5.5) & (freq < 1 / 3.0)].max()
    background = np.median(power[(freq > 0.3)])
    assert lattice > 1000 * background


def test_unknown_sample_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sample type"):
        make_object("Moon rock", 64, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown sample type"):
        object_metadata("Moon rock")


def test_metadata_describes_each_type() -> None:
    for t in SAMPLE_TYPES:
        meta = object_metadata(t)
        assert meta["sample_type"] == t
        assert isinstance(meta["description"], str)
        assert len(meta["description"]) > 20
        assert isinstance(meta["material"], str)
        assert meta["material"]
