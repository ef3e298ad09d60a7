"""Reconstruction of simulated data with Pty-chi (the real package, PyPI ``ptychi``).

:class:`ReconConfig` holds the knobs that the 24 recommendation options turn (batch
size and selection, momentum, multimodal update, position correction and its affine
constraint, probe and OPR modes, iterations, regularization, noise model), each mapped
to its Pty-chi option path in :func:`build_options`. torch and ptychi are imported
inside the functions, so ``ptychobench.sim`` imports without them; every process uses
one torch thread (more threads stall on small problems).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from ptychobench.sim.forward import DiffractionData
from ptychowire.reconstructor import Engine

logger = logging.getLogger(__name__)

ComplexArray = npt.NDArray[np.complex64]
FloatArray = npt.NDArray[np.float64]
EpochCallback = Callable[[int, int, float], None]
"""Called after each epoch with (epochs done, epochs in all, that epoch's loss); an
exception it raises stops the reconstruction (how a job is cancelled)."""


class ReconConfig(BaseModel):
    """Reconstruction parameters, in the words of the recommendation options.

    ``n_opr_modes`` counts Pty-chi's OPR modes including the main one (``probe_data``'s
    first axis): 1 = no variable-probe correction, 2 = one eigenmode ("set OPR modes to
    1" in the options' words). ``batch_size=None`` puts all positions in one batch.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Engine = "lsqml"
    num_epochs: int = Field(default=50, ge=1)
    batch_size: int | None = Field(default=100, ge=1)
    batching_mode: Literal["random", "compact", "uniform"] = "random"
    momentum: float = Field(default=0.0, ge=0)
    multimodal_update: bool = True
    position_correction: bool = False
    position_step_size: float = Field(default=0.3, gt=0)
    position_update_limit: float | None = Field(default=0.1, gt=0)
    position_correction_start: int = Field(default=0, ge=0)
    affine_constraint: bool = False
    n_probe_modes: int = Field(default=1, ge=1)
    n_opr_modes: int = Field(default=1, ge=1)
    probe_update_start: int = Field(default=0, ge=0)
    noise_model: Literal["poisson", "gaussian"] = "gaussian"
    tv_weight: float = Field(default=0.0, ge=0)
    smoothness: float = Field(default=0.0, ge=0, le=0.125)
    pie_alpha: float = Field(default=0.3, gt=0, le=1)
    device: Literal["cpu", "cuda", "auto"] = "auto"
    seed: int | None = 0
    torch_threads: int = Field(default=1, ge=1)


@dataclass(frozen=True)
class ReconResult:
    """What a reconstruction produced.

    ``object`` (H, W) complex64 (first slice), ``probe`` (n_opr_modes, n_modes, h, w),
    ``positions`` (N, 2) (y, x) px after any correction, ``losses`` one per epoch.
    """

    object: ComplexArray
    probe: ComplexArray
    positions: FloatArray
    losses: tuple[float, ...]
    seconds: float
    device: str


def load_ptychi() -> tuple[Any, Any]:
    """Import Pty-chi: ``(ptychi.api, PtychographyTask)``.

    Pty-chi 2.2.0 has a docstring with an invalid escape sequence; where its modules are
    compiled on import (no ``.pyc``, Python 3.12) that is a ``SyntaxWarning``, which a
    warnings-as-errors setting turns into a ``SyntaxError``. It is harmless, so it is
    silenced here, and nowhere else.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import ptychi.api as api
        from ptychi.api.task import PtychographyTask
    return api, PtychographyTask


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_options(config: ReconConfig, n_positions: int, device: str = "cpu") -> Any:
    """Pty-chi task options for ``config`` (an ``LSQMLOptions`` or ``EPIEOptions``)."""
    api, _ = load_ptychi()

    options: Any
    if config.engine == "lsqml":
        options = api.LSQMLOptions()
        ro = options.reconstructor_options
        ro.noise_model = (
            api.NoiseModels.POISSON if config.noise_model == "poisson" else api.NoiseModels.GAUSSIAN
        )
        ro.momentum_acceleration_gain = config.momentum
        options.object_options.multimodal_update = config.multimodal_update
    else:
        options = api.EPIEOptions()
        ro = options.reconstructor_options
        options.object_options.alpha = config.pie_alpha
        options.probe_options.alpha = config.pie_alpha
    ro.num_epochs = config.num_epochs
    ro.batch_size = min(config.batch_size or n_positions, n_positions)
    ro.batching_mode = api.BatchingModes[config.batching_mode.upper()]
    ro.default_device = api.Devices.GPU if device == "cuda" else api.Devices.CPU
    ro.random_seed = config.seed
    ro.displayed_loss_function = api.LossFunctions.MSE_SQRT

    obj = options.object_options
    obj.optimizable = True
    if config.tv_weight > 0:
        obj.total_variation.enabled = True
        obj.total_variation.weight = config.tv_weight
    if config.smoothness > 0:
        obj.smoothness_constraint.enabled = True
        obj.smoothness_constraint.alpha = config.smoothness

    probe = options.probe_options
    probe.optimizable = True
    probe.optimization_plan.start = config.probe_update_start

    pp = options.probe_position_options
    pp.optimizable = config.position_correction
    pp.step_size = config.position_step_size
    pp.optimization_plan.start = config.position_correction_start
    pp.correction_options.update_magnitude_limit = config.position_update_limit
    pp.affine_transform_constraint.enabled = config.affine_constraint

    opr = options.opr_mode_weight_options
    if config.n_opr_modes > 1:
        opr.optimizable = True
        opr.optimize_eigenmode_weights = True
        opr.optimize_intensity_variation = True
    return options


def _initial_probe(initial_probe: npt.ArrayLike, config: ReconConfig, patterns: Any) -> Any:
    """(n_opr, n_modes, h, w) torch probe: extra incoherent and OPR modes added, scaled."""
    import torch
    from ptychi import utils

    probe = np.asarray(initial_probe, dtype=np.complex64)
    while probe.ndim < 4:
        probe = probe[None]
    probe = probe[:1]  # the OPR modes are rebuilt below
    main = torch.as_tensor(probe)
    if main.shape[1] < config.n_probe_modes:
        grown = torch.zeros((1, config.n_probe_modes, *main.shape[-2:]), dtype=main.dtype)
        grown[0, 0] = main[0, 0]
        main = utils.orthogonalize_initial_probe(grown)  # Hermite modes, 2 % power each
    else:
        main = main[:, : config.n_probe_modes]
    # ptychi annotates rescale_probe as returning None, but it returns the scaled probe.
    main = torch.as_tensor(utils.rescale_probe(main.numpy(), patterns))  # type: ignore[func-returns-value]
    if config.n_opr_modes > 1:
        main = utils.add_additional_opr_probe_modes_to_probe(main, config.n_opr_modes - 1)
    return main


def reconstruct(
    data: DiffractionData | npt.ArrayLike,
    initial_probe: npt.ArrayLike,
    nominal_positions: npt.ArrayLike | None = None,
    config: ReconConfig | None = None,
    object_size: int | tuple[int, int] | None = None,
    initial_object: npt.ArrayLike | None = None,
    on_epoch: EpochCallback | None = None,
    valid_pixel_mask: npt.ArrayLike | None = None,
) -> ReconResult:
    """Reconstruct ``data`` with Pty-chi from a starting probe and the nominal positions.

    ``data`` is a :class:`DiffractionData` (its nominal positions are used unless given)
    or an (N, h, w) array of centred intensities. ``object_size`` defaults to the
    smallest even size that holds the scan. The starting object is all ones.
    ``on_epoch`` is called after every epoch (Pty-chi is then run one epoch at a time,
    which gives the same result). ``valid_pixel_mask`` (h, w) marks the detector pixels
    to use (all by default).
    """
    import torch

    config = config or ReconConfig()
    if isinstance(data, DiffractionData):
        patterns = data.patterns
        if nominal_positions is None:
            nominal_positions = data.positions
    else:
        patterns = np.asarray(data, dtype=np.float32)
    if nominal_positions is None:
        raise ValueError("nominal_positions are required when data is a plain array")
    positions = np.asarray(nominal_positions, dtype=np.float64).reshape(-1, 2)
    h, w = patterns.shape[-2:]
    shape = _object_shape(object_size, positions, (h, w))

    device = resolve_device(config.device)
    _, PtychographyTask = load_ptychi()  # noqa: N806 (a class)
    from ptychi.utils import generate_initial_opr_mode_weights

    options = build_options(config, len(positions), device)
    # The extra probe modes and OPR weights are drawn from torch's global generator,
    # before Pty-chi seeds it: seeded here (without touching the caller's generator), a
    # reconstruction with several modes is the same in every process.
    with torch.random.fork_rng(devices=[]):
        if config.seed is not None:
            torch.manual_seed(config.seed)
        probe = _initial_probe(initial_probe, config, patterns)
        weights = None
        if config.n_opr_modes > 1:
            weights = generate_initial_opr_mode_weights(len(positions), config.n_opr_modes)
    obj = (
        np.ones((1, *shape), dtype=np.complex64)
        if initial_object is None
        else np.asarray(initial_object, dtype=np.complex64).reshape(1, *shape)
    )
    mask: dict[str, Any] = {}
    if valid_pixel_mask is not None:
        mask["valid_pixel_mask"] = np.asarray(valid_pixel_mask, dtype=bool)
    # Pty-chi sets torch's process-wide default device and dtype; put them back after,
    # and the caller's thread count too.
    default_device, default_dtype = torch.get_default_device(), torch.get_default_dtype()
    threads = torch.get_num_threads()
    started = time.perf_counter()
    try:
        torch.set_num_threads(config.torch_threads)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with PtychographyTask(
                options,
                diffraction_data=np.ascontiguousarray(patterns, dtype=np.float32),
                object_data=obj,
                probe_data=probe,
                probe_position_x_px=positions[:, 1],
                probe_position_y_px=positions[:, 0],
                opr_mode_weights_data=weights,
                **mask,
            ) as task:
                if device == "cpu":
                    # Pty-chi made "cpu" the default device, which puts torch's device
                    # mode in front of every operation; the CPU is the default anyway.
                    # Measured: 15-22 % of a CPU reconstruction, bitwise the same result.
                    torch.set_default_device(None)
                if on_epoch is None:
                    task.run()
                else:
                    for epoch in range(config.num_epochs):
                        task.run(n_epochs=1)
                        table = task.reconstructor.loss_tracker.table
                        on_epoch(epoch + 1, config.num_epochs, float(table["loss"].iloc[-1]))
                seconds = time.perf_counter() - started
                result_object = task.get_data_to_cpu("object", as_numpy=True)[0]
                result_probe = task.get_data_to_cpu("probe", as_numpy=True)
                result_positions = task.get_data_to_cpu("probe_positions", as_numpy=True)
                table = task.reconstructor.loss_tracker.table
                losses = tuple(float(v) for v in table["loss"].to_numpy())
    finally:
        torch.set_default_device(default_device)
        torch.set_default_dtype(default_dtype)
        torch.set_num_threads(threads)
    for message in {str(w.message) for w in caught}:  # library noise, kept out of pytest
        logger.debug("ptychi warning: %s", message)
    logger.info(
        "%s: %d epochs, %d positions, %s object in %.1f s on %s",
        config.engine,
        config.num_epochs,
        len(positions),
        shape,
        seconds,
        device,
    )
    return ReconResult(
        object=np.asarray(result_object, dtype=np.complex64),
        probe=np.asarray(result_probe, dtype=np.complex64),
        positions=np.asarray(result_positions, dtype=np.float64),
        losses=losses,
        seconds=seconds,
        device=device,
    )


def _object_shape(
    object_size: int | tuple[int, int] | None, positions: FloatArray, probe: tuple[int, int]
) -> tuple[int, int]:
    if isinstance(object_size, int):
        return object_size, object_size
    if object_size is not None:
        return int(object_size[0]), int(object_size[1])
    size = [int(np.ceil(2 * np.abs(positions[:, i]).max() + probe[i] + 4)) for i in range(2)]
    return size[0] + size[0] % 2, size[1] + size[1] % 2
