from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from typing import Literal

import numpy as np
import pydantic
import pytest

from ptychobench.sim.forward import DiffractionData, simulate
from ptychobench.sim.instruments import INSTRUMENTS, make_probe, make_probe_modes, make_scan
from ptychobench.sim.objects import make_object
from ptychobench.sim.reconstruct import (
    ReconConfig,
    _object_shape,
    build_options,
    load_ptychi,
    reconstruct,
)

needs_ptychi = pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed")

SIZE, PROBE = 96, 32


def test_the_library_imports_without_torch() -> None:
    code = (
        "import sys, ptychobench.sim, ptychobench.sim.reconstruct; "
        "heavy = {'torch', 'ptychi'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_is_strict_and_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        ReconConfig(engine="dm")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        ReconConfig(num_epoch=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        ReconConfig(n_probe_modes=0)
    config = ReconConfig()
    with pytest.raises(pydantic.ValidationError):
        config.num_epochs = 3


def test_default_object_shape_holds_the_scan() -> None:
    positions = np.array([[-20.2, 10.0], [15.0, -30.7]])
    h, w = _object_shape(None, positions, (32, 32))
    assert h % 2 == 0
    assert w % 2 == 0
    assert h >= 2 * 20.2 + 32
    assert w >= 2 * 30.7 + 32
    assert _object_shape(128, positions, (32, 32)) == (128, 128)


@pytest.mark.slow
@needs_ptychi
def test_config_maps_to_ptychi_option_paths() -> None:
    api, _ = load_ptychi()

    config = ReconConfig(
        num_epochs=7,
        batch_size=None,
        batching_mode="compact",
        momentum=0.5,
        multimodal_update=False,
        position_correction=True,
        position_step_size=3.0,
        position_update_limit=0.5,
        position_correction_start=2,
        affine_constraint=True,
        n_opr_modes=2,
        probe_update_start=4,
        noise_model="poisson",
        tv_weight=0.01,
        smoothness=0.05,
    )
    options = build_options(config, 55)
    ro, pp = options.reconstructor_options, options.probe_position_options
    assert isinstance(options, api.LSQMLOptions)
    assert ro.num_epochs == 7
    assert ro.batch_size == 55
    assert ro.batching_mode == api.BatchingModes.COMPACT
    assert ro.momentum_acceleration_gain == 0.5
    assert ro.noise_model == api.NoiseModels.POISSON
    assert ro.default_device == api.Devices.CPU
    assert options.object_options.multimodal_update is False
    assert pp.optimizable
    assert pp.step_size == 3.0
    assert pp.optimization_plan.start == 2
    assert pp.correction_options.update_magnitude_limit == 0.5
    assert pp.affine_transform_constraint.enabled
    assert options.opr_mode_weight_options.optimizable
    assert options.probe_options.optimization_plan.start == 4
    assert options.object_options.total_variation.enabled
    assert options.object_options.total_variation.weight == 0.01
    assert options.object_options.smoothness_constraint.alpha == 0.05
    epie = build_options(ReconConfig(engine="epie", pie_alpha=0.2, batch_size=10), 55)
    assert isinstance(epie, api.EPIEOptions)
    assert epie.object_options.alpha == 0.2
    assert epie.reconstructor_options.batch_size == 10


def _experiment(sample_type: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, DiffractionData]:
    rng = np.random.default_rng(seed)
    instrument = INSTRUMENTS["APS-2IDE-XFM"]
    obj = make_object(sample_type, SIZE, rng)
    probe = make_probe(instrument, PROBE, rng)
    positions = make_scan(instrument, SIZE, PROBE, rng)
    data = simulate(obj, make_probe_modes(probe, 1, 1.0), positions, 1e6, rng)
    return obj, probe, data


def phase_correlation(truth: np.ndarray, recon: np.ndarray, positions: np.ndarray) -> float:
    """Pearson r of the phases over the scanned region, after the global phase offset."""
    half = int(np.abs(positions).max())
    centre = truth.shape[0] // 2
    region = slice(centre - half, centre + half)
    t, r = truth[region, region], recon[region, region]
    offset = np.vdot(r, t)
    r = r * offset / abs(offset)
    return float(np.corrcoef(np.angle(t).ravel(), np.angle(r).ravel())[0, 1])


@pytest.mark.slow
@needs_ptychi
@pytest.mark.parametrize("engine", ["lsqml", "epie"])
def test_reconstruction_recovers_the_object(engine: Literal["lsqml", "epie"]) -> None:
    import torch

    obj, _probe, data = _experiment("Integrated circuit")
    assert 40 <= data.n_positions <= 80
    start_probe = make_probe(INSTRUMENTS["APS-2IDE-XFM"], PROBE, np.random.default_rng(9))
    config = ReconConfig(engine=engine, num_epochs=30, device="cpu", torch_threads=1)
    callers = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = reconstruct(data, start_probe, config=config, object_size=SIZE)
        assert torch.get_num_threads() == 2  # the caller's thread count is put back
    finally:
        torch.set_num_threads(callers)
    assert result.object.shape == (SIZE, SIZE)
    assert result.object.dtype == np.complex64
    assert result.probe.shape == (1, 1, PROBE, PROBE)
    assert len(result.losses) == 30
    assert result.losses[-1] < 0.1 * result.losses[0]
    assert isinstance(result.seconds, float)  # recorded; timings belong in benchmarks/
    assert result.device == "cpu"
    assert phase_correlation(obj, result.object, data.positions) > 0.8
    assert torch.get_default_device().type == "cpu"  # ptychi's global changes are undone


@pytest.mark.slow
@needs_ptychi
def test_transposed_patterns_do_not_reconstruct() -> None:
    """The score can fail: wrongly oriented patterns (a Q fault) give no structure."""
    obj, _, data = _experiment("Integrated circuit")
    transposed = np.ascontiguousarray(np.swapaxes(data.patterns, 1, 2)[:, ::-1])
    start_probe = make_probe(INSTRUMENTS["APS-2IDE-XFM"], PROBE, np.random.default_rng(9))
    config = ReconConfig(num_epochs=10, device="cpu")
    result = reconstruct(transposed, start_probe, data.positions, config, SIZE)
    assert phase_correlation(obj, result.object, data.positions) < 0.5


@pytest.mark.slow
@needs_ptychi
def test_extra_modes_and_position_correction_run_and_repeat() -> None:
    """Extra probe and OPR modes start from random draws: seeded by the configuration,
    so a second run (after the caller drew from torch's generator) gives the same
    reconstruction."""
    import torch

    _, probe, data = _experiment("Supercrystal", seed=1)
    config = ReconConfig(
        num_epochs=4,
        n_probe_modes=2,
        n_opr_modes=2,
        position_correction=True,
        position_step_size=3.0,
        position_update_limit=0.5,
        device="cpu",
    )
    result = reconstruct(data, probe, config=config, object_size=SIZE)
    assert result.probe.shape == (2, 2, PROBE, PROBE)
    assert result.positions.shape == data.positions.shape
    assert not np.allclose(result.positions, data.positions)  # corrected
    assert np.all(np.isfinite(result.object))
    torch.rand(7)
    again = reconstruct(data, probe, config=config, object_size=SIZE)
    np.testing.assert_array_equal(again.object, result.object)


@pytest.mark.slow
@needs_ptychi
def test_epoch_by_epoch_is_the_same_reconstruction_and_can_be_stopped() -> None:
    """``on_epoch`` runs Pty-chi one epoch at a time: the same result, with progress, and
    an exception from the callback stops it (how the reconstructor cancels a job)."""
    import torch

    _, probe, data = _experiment("Siemens star", seed=2)
    config = ReconConfig(num_epochs=3, device="cpu")
    whole = reconstruct(data, probe, config=config, object_size=SIZE)
    seen: list[tuple[int, int, float]] = []
    stepped = reconstruct(
        data, probe, config=config, object_size=SIZE, on_epoch=lambda *a: seen.append(a)
    )
    np.testing.assert_array_equal(stepped.object, whole.object)
    assert stepped.losses == whole.losses
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert [loss for *_, loss in seen] == pytest.approx(list(whole.losses))

    class StopError(Exception):
        pass

    def stop(done: int, total: int, loss: float) -> None:
        raise StopError

    with pytest.raises(StopError):
        reconstruct(data, probe, config=config, object_size=SIZE, on_epoch=stop)
    assert torch.get_default_device().type == "cpu"
