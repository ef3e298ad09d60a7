from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import numpy as np
import pytest

from ptychobench.sim.forward import (
    exit_waves,
    far_field_intensity,
    scale_probe,
    simulate,
    window_origin,
)
from ptychobench.sim.instruments import INSTRUMENTS, make_probe, make_probe_modes, make_scan
from ptychobench.sim.objects import make_object
from ptychobench.sim.reconstruct import load_ptychi

needs_ptychi = pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed")

SIZE, PROBE = 96, 32


@pytest.fixture(scope="module")
def setup() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    instrument = INSTRUMENTS["APS-2IDE-XFM"]
    obj = make_object("Integrated circuit", SIZE, rng)
    modes = make_probe_modes(make_probe(instrument, PROBE, rng), 2, 0.8)
    positions = make_scan(instrument, SIZE, PROBE, rng)
    return obj, modes, positions


def test_parseval_energy_is_conserved(setup: tuple[np.ndarray, ...]) -> None:
    obj, modes, positions = setup
    positions = positions + np.random.default_rng(1).uniform(-0.5, 0.5, positions.shape)
    waves = exit_waves(obj, modes, positions)
    intensity = far_field_intensity(waves)
    expected = PROBE * PROBE * np.sum(np.abs(waves) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(intensity.sum(axis=(1, 2)), expected, rtol=1e-9)


def test_empty_object_gives_the_dose_and_poisson_counts(setup: tuple[np.ndarray, ...]) -> None:
    _, modes, positions = setup
    empty = np.ones((SIZE, SIZE), np.complex64)
    data = simulate(empty, modes, positions, 2e5, np.random.default_rng(0))
    totals = data.patterns.sum(axis=(1, 2))
    # Poisson: mean 2e5, standard deviation sqrt(2e5) ≈ 447 per pattern
    assert totals.mean() == pytest.approx(2e5, rel=3 * 447 / 2e5 / np.sqrt(len(totals)))
    assert totals.std() == pytest.approx(np.sqrt(2e5), rel=0.35)
    assert np.all(data.patterns == np.round(data.patterns))  # counts
    assert data.patterns.dtype == np.float32


def test_absorbing_object_removes_photons(setup: tuple[np.ndarray, ...]) -> None:
    obj, modes, positions = setup
    data = simulate(obj, modes, positions, 1e5, np.random.default_rng(0), poisson=False)
    totals = data.patterns.sum(axis=(1, 2))
    assert totals.max() <= 1e5 * (1 + 1e-5)
    assert totals.min() < 0.95e5


def test_zero_frequency_is_in_the_centre() -> None:
    probe = make_probe(INSTRUMENTS["26-ID-C"], PROBE, np.random.default_rng(0), aberration_rad=0)
    data = simulate(
        np.ones((64, 64), np.complex64),
        probe,
        np.zeros((1, 2)),
        1e4,
        np.random.default_rng(0),
        poisson=False,
    )
    peak = np.unravel_index(np.argmax(data.patterns[0]), data.patterns[0].shape)
    assert tuple(int(i) for i in peak) == (PROBE // 2, PROBE // 2)


def test_scaled_probe_carries_the_dose(setup: tuple[np.ndarray, ...]) -> None:
    _, modes, _ = setup
    probe = scale_probe(modes, 1e6)
    assert PROBE * PROBE * np.sum(np.abs(probe) ** 2) == pytest.approx(1e6, rel=1e-5)


def test_window_follows_ptychi_convention() -> None:
    # position (0, 0) centres the probe on the object: window starts at (H - h) / 2
    np.testing.assert_array_equal(window_origin([[0.0, 0.0]], (96, 96), (32, 32)), [[32, 32]])
    np.testing.assert_array_equal(window_origin([[-3.4, 2.6]], (96, 128), (32, 32)), [[29, 51]])


def test_integer_positions_multiply_the_right_patch() -> None:
    rng = np.random.default_rng(3)
    obj = np.exp(1j * rng.uniform(0, 1, (64, 64))).astype(np.complex64)
    probe = np.ones((1, 16, 16), np.complex64)
    waves = exit_waves(obj, probe, [[-5.0, 7.0]])
    np.testing.assert_allclose(waves[0, 0], obj[24 - 5 : 40 - 5, 24 + 7 : 40 + 7], rtol=1e-6)


def test_position_errors_change_the_data_but_not_the_nominal_positions(
    setup: tuple[np.ndarray, ...],
) -> None:
    obj, modes, positions = setup
    errors = np.random.default_rng(2).normal(0, 2, positions.shape)
    clean = simulate(obj, modes, positions, 1e5, np.random.default_rng(0), poisson=False)
    faulty = simulate(
        obj, modes, positions, 1e5, np.random.default_rng(0), poisson=False, position_errors=errors
    )
    np.testing.assert_array_equal(faulty.positions, positions)
    np.testing.assert_allclose(faulty.true_positions, positions + errors)
    assert not np.allclose(clean.patterns, faulty.patterns, rtol=1e-2)
    moved = simulate(obj, modes, positions + errors, 1e5, np.random.default_rng(0), poisson=False)
    np.testing.assert_allclose(moved.patterns, faulty.patterns)


def test_detector_and_handling_hooks(setup: tuple[np.ndarray, ...]) -> None:
    obj, modes, positions = setup
    positions = positions[:10]

    def run(**kwargs: Any) -> np.ndarray:
        data = simulate(
            obj, modes, positions, 1e5, np.random.default_rng(0), poisson=False, **kwargs
        )
        return data.patterns

    clean = run()
    flux = np.linspace(0.5, 1.5, 10)
    np.testing.assert_allclose(run(flux=flux), clean * flux[:, None, None], rtol=1e-5)
    np.testing.assert_allclose(run(pattern_shift=(2, -3)), np.roll(clean, (2, -3), axis=(1, 2)))
    np.testing.assert_array_equal(run(transpose=True), np.swapaxes(clean, 1, 2))
    hot = run(hot_pixels=[(3, 4, 1000.0)])
    np.testing.assert_allclose(hot[:, 3, 4], clean[:, 3, 4] + 1000.0)
    np.testing.assert_array_equal(
        np.delete(hot.reshape(10, -1), 3 * PROBE + 4, axis=1),
        np.delete(clean.reshape(10, -1), 3 * PROBE + 4, axis=1),
    )
    level = 0.6 * clean.max()
    assert run(saturation=level).max() == pytest.approx(level)
    stopped = run(beamstop_radius=3.0)
    assert stopped[:, PROBE // 2 - 2 : PROBE // 2 + 3, PROBE // 2].max() == 0
    assert stopped[:, 0, 0] == pytest.approx(clean[:, 0, 0])
    gap = np.zeros((PROBE, PROBE), bool)
    gap[:, 20] = True
    gapped = run(dead_pixels=gap)
    assert gapped[:, :, 20].max() == 0
    assert gapped[:, :, 21] == pytest.approx(clean[:, :, 21])


def test_simulation_is_deterministic_per_seed(setup: tuple[np.ndarray, ...]) -> None:
    obj, modes, positions = setup
    a = simulate(obj, modes, positions, 1e4, np.random.default_rng(5)).patterns
    b = simulate(obj, modes, positions, 1e4, np.random.default_rng(5)).patterns
    c = simulate(obj, modes, positions, 1e4, np.random.default_rng(6)).patterns
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_windows_outside_the_object_are_refused(setup: tuple[np.ndarray, ...]) -> None:
    obj, modes, _ = setup
    with pytest.raises(ValueError, match="outside the object"):
        simulate(obj, modes, [[40.0, 0.0]], 1e4, np.random.default_rng(0))


@pytest.mark.slow
@needs_ptychi
@pytest.mark.filterwarnings("ignore::UserWarning")  # ptychi's own noise (tensors with grad)
@pytest.mark.parametrize(("n_modes", "fractional"), [(1, True), (2, False)])
def test_matches_ptychi_forward_operator(
    setup: tuple[np.ndarray, ...], n_modes: int, fractional: bool
) -> None:
    """Our patterns equal Pty-chi's own forward model on the same object, probe, positions.

    (With several modes and sub-pixel positions Pty-chi shifts only the first mode, an
    approximation of its own; the simulator shifts every mode.)
    """
    import torch

    api, PtychographyTask = load_ptychi()  # noqa: N806 (a class)

    obj, modes, positions = setup
    torch.set_num_threads(1)
    positions = positions[:20] if fractional else np.rint(positions[:20])
    data = simulate(obj, modes[:n_modes], positions, 1e6, np.random.default_rng(0), poisson=False)
    options = api.LSQMLOptions()
    options.reconstructor_options.default_device = api.Devices.CPU
    device, dtype = torch.get_default_device(), torch.get_default_dtype()
    try:
        task = PtychographyTask(
            options,
            diffraction_data=data.patterns,
            object_data=obj[None],
            probe_data=data.probe[None],
            probe_position_x_px=positions[:, 1],
            probe_position_y_px=positions[:, 0],
        )
        with torch.no_grad():
            predicted = task.reconstructor.forward_model.forward(torch.arange(20)).cpu().numpy()
    finally:
        torch.set_default_device(device)
        torch.set_default_dtype(dtype)
    ours = np.fft.ifftshift(data.patterns, axes=(-2, -1))  # Pty-chi keeps DC at the corner
    np.testing.assert_allclose(predicted, ours, rtol=0, atol=2e-6 * ours.max())
