"""Reading experiments and reconstructions, checked against :class:`~ptychobench.
experiment_io.model.Limits` (the layout: the package's docstring)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from ptychobench.experiment_io.model import (
    HC_EV_M,
    LAYOUT,
    PREPROCESS_STEPS,
    Experiment,
    ExperimentError,
    FloatArray,
    Geometry,
    Limits,
    Reconstruction,
    Source,
    Truth,
)
from ptychobench.sim.reconstruct import ReconConfig


def _open(source: Source) -> Any:
    import h5py

    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as error:
        raise ExperimentError("file", f"not a readable HDF5 file ({error})") from error


def _dataset(h5: Any, name: str) -> Any:
    import h5py

    item = h5.get(name)
    if item is None:
        raise ExperimentError(name, "missing")
    if not isinstance(item, h5py.Dataset):
        raise ExperimentError(name, "is a group, not a dataset")
    return item


def _attr_float(node: Any, name: str, label: str, low: float, high: float) -> float:
    if name not in node.attrs:
        raise ExperimentError(label, "missing")
    try:
        value = float(np.asarray(node.attrs[name]).reshape(()))
    except (TypeError, ValueError) as error:
        raise ExperimentError(label, f"not a number ({error})") from error
    if not np.isfinite(value) or not low <= value <= high:
        raise ExperimentError(label, f"{value!r} is outside [{low:g}, {high:g}]")
    return value


def _attr_text(node: Any, name: str, default: str = "") -> str:
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _attr_json(node: Any, name: str, label: str, default: Any) -> Any:
    if name not in node.attrs:
        return default
    try:
        return json.loads(_attr_text(node, name))
    except json.JSONDecodeError as error:
        raise ExperimentError(label, f"not valid JSON ({error})") from error


def _finite(name: str, array: npt.NDArray[Any]) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        raise ExperimentError(name, f"{int(bad.sum())} value(s) are NaN or infinite")


def _numeric(name: str, item: Any, complex_ok: bool) -> None:
    kind = item.dtype.kind
    allowed = "iufc" if complex_ok else "iuf"
    if kind not in allowed:
        what = "real numbers" if not complex_ok else "numbers"
        raise ExperimentError(name, f"dtype {item.dtype} is not {what}")


def _positions(h5: Any, prefix: str, n: int, pixel: float) -> FloatArray:
    columns = []
    for axis in ("y", "x"):
        name = f"{prefix}probe_position_{axis}_m"
        item = _dataset(h5, name)
        _numeric(name, item, complex_ok=False)
        if item.shape != (n,):
            raise ExperimentError(name, f"shape {item.shape}, expected ({n},): one per pattern")
        values = np.asarray(item[()], dtype=np.float64)
        _finite(name, values)
        columns.append(values / pixel)
    return np.stack(columns, axis=1)


def _config(h5: Any) -> ReconConfig:
    group = h5.get("ptychoagent")
    if group is None or "recon_config" not in group.attrs:
        return ReconConfig()
    data = _attr_json(group, "recon_config", "ptychoagent/recon_config", {})
    try:
        return ReconConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ExperimentError(f"ptychoagent/recon_config.{where}", first["msg"]) from error


def check_inside(
    positions_px: FloatArray,
    object_shape: tuple[int, int],
    probe_px: int,
    field: str = "probe_position",
) -> None:
    """Every probe window must lie inside the object (as Pty-chi places it)."""
    for axis, name in ((0, "y"), (1, "x")):
        size = object_shape[axis]
        origin = np.rint(positions_px[:, axis]).astype(np.int64) + round(size / 2) - probe_px // 2
        outside = (origin < 0) | (origin + probe_px > size)
        if outside.any():
            worst = float(
                positions_px[outside, axis][np.argmax(np.abs(positions_px[outside, axis]))]
            )
            limit = (size - probe_px) / 2
            raise ExperimentError(
                f"{field}_{name}_m",
                f"{int(outside.sum())} position(s) put the {probe_px}-px probe outside the "
                f"{size}-px object (|{name}| ≤ {limit:g} px allowed; worst {worst:.1f} px)",
            )


def read_experiment(source: Source, limits: Limits | None = None) -> Experiment:
    """Read and check an experiment; :class:`ExperimentError` names what is wrong.

    Shapes and sizes are checked before any large array is read.
    """
    limits = limits or Limits()
    with _open(source) as h5:
        layout = _attr_text(h5, "layout")
        if layout and layout.split("/")[0] != LAYOUT.split("/")[0]:
            raise ExperimentError("layout", f"{layout!r} is not {LAYOUT!r}")
        dp = _dataset(h5, "dp")
        _numeric("dp", dp, complex_ok=False)
        if dp.ndim != 3:
            raise ExperimentError("dp", f"shape {dp.shape}: expected (positions, height, width)")
        n, h, w = (int(s) for s in dp.shape)
        if n < 1:
            raise ExperimentError("dp", "holds no patterns")
        if n > limits.max_positions:
            raise ExperimentError("dp", f"{n:,} patterns; at most {limits.max_positions:,}")
        if h != w:
            raise ExperimentError("dp", f"patterns are {h}×{w}; only square patterns are supported")
        if not 8 <= h <= limits.max_pattern_px:
            raise ExperimentError("dp", f"{h}-px patterns; between 8 and {limits.max_pattern_px}")
        if h % 2:
            raise ExperimentError("dp", f"{h}-px patterns; the size must be even")
        if 4 * n * h * w > limits.max_pattern_bytes:
            raise ExperimentError(
                "dp", f"{4 * n * h * w:,} bytes as float32; at most {limits.max_pattern_bytes:,}"
            )

        h5_object = _dataset(h5, "object")
        _numeric("object", h5_object, complex_ok=True)
        if h5_object.ndim not in (2, 3):
            raise ExperimentError(
                "object", f"shape {h5_object.shape}: expected (slices, H, W) or (H, W)"
            )
        size = tuple(int(s) for s in h5_object.shape[-2:])
        if h5_object.ndim == 3 and not 1 <= h5_object.shape[0] <= limits.max_modes:
            raise ExperimentError("object", f"{h5_object.shape[0]} slices")
        if not all(h <= s <= limits.max_object_px for s in size):
            raise ExperimentError(
                "object",
                f"{size[0]}×{size[1]} px; each side must be between the pattern size {h} "
                f"and {limits.max_object_px}",
            )
        pixel_h = _attr_float(h5_object, "pixel_height_m", "object.pixel_height_m", 1e-12, 1e-3)
        pixel_w = _attr_float(h5_object, "pixel_width_m", "object.pixel_width_m", 1e-12, 1e-3)
        if abs(pixel_h - pixel_w) > 1e-6 * pixel_h:
            raise ExperimentError(
                "object.pixel_width_m",
                f"{pixel_w:g} ≠ pixel_height_m {pixel_h:g}: pixels must be square",
            )

        h5_probe = _dataset(h5, "probe")
        _numeric("probe", h5_probe, complex_ok=True)
        if not 2 <= h5_probe.ndim <= 4 or tuple(h5_probe.shape[-2:]) != (h, w):
            raise ExperimentError(
                "probe",
                f"shape {h5_probe.shape}: expected ([opr modes,] [modes,] {h}, {w}), "
                "the size of the patterns",
            )
        if any(s < 1 or s > limits.max_modes for s in h5_probe.shape[:-2]):
            raise ExperimentError("probe", f"shape {h5_probe.shape}: 1 to {limits.max_modes} modes")

        energy = _attr_float(h5, "probe_energy_eV", "probe_energy_eV", 100.0, 200_000.0)
        distance = _attr_float(
            h5, "detector_object_distance_m", "detector_object_distance_m", 1e-4, 1000.0
        )
        if "detector_pixel_width_m" in h5.attrs:
            detector_pixel = _attr_float(
                h5, "detector_pixel_width_m", "detector_pixel_width_m", 1e-7, 1e-2
            )
        else:  # a ptychodus product has none: the object pixel defines it
            detector_pixel = HC_EV_M / energy * distance / (h * pixel_h)
        geometry = Geometry(energy, distance, detector_pixel, pixel_h)
        expected = geometry.far_field_pixel_m(h)
        if abs(expected - pixel_h) > 0.02 * pixel_h:
            raise ExperimentError(
                "object.pixel_height_m",
                f"{pixel_h:.4g} m disagrees with the far-field pixel λz/(n·p) = {expected:.4g} m "
                "from probe_energy_eV, detector_object_distance_m and detector_pixel_width_m",
            )

        positions = _positions(h5, "", n, pixel_h)
        check_inside(positions, size, h)  # type: ignore[arg-type]

        patterns = np.asarray(dp[()], dtype=np.float32)
        _finite("dp", patterns)
        if (patterns < 0).any():
            raise ExperimentError("dp", f"{int((patterns < 0).sum())} negative intensities")
        if not patterns.any():
            raise ExperimentError("dp", "every pattern is zero")
        probe = np.asarray(h5_probe[()], dtype=np.complex64)
        _finite("probe", probe)
        if not np.abs(probe).any():
            raise ExperimentError("probe", "is zero everywhere")
        while probe.ndim < 4:
            probe = probe[None]
        obj = np.asarray(h5_object[()], dtype=np.complex64)
        _finite("object", obj)
        if obj.ndim == 2:
            obj = obj[None]

        mask = None
        if "valid_pixel_mask" in h5:
            item = _dataset(h5, "valid_pixel_mask")
            if tuple(item.shape) != (h, w):
                raise ExperimentError(
                    "valid_pixel_mask", f"shape {item.shape}, expected ({h}, {w})"
                )
            mask = np.asarray(item[()], dtype=bool)
            if not mask.any():
                raise ExperimentError("valid_pixel_mask", "masks every pixel")

        config = _config(h5)
        meta = h5.get("ptychoagent")
        preprocess: tuple[str, ...] = ()
        parameters: dict[str, str] = {}
        sample_type = instrument = source_name = ""
        if meta is not None:
            steps = _attr_json(meta, "preprocess", "ptychoagent/preprocess", [])
            if not isinstance(steps, list) or any(s not in PREPROCESS_STEPS for s in steps):
                raise ExperimentError(
                    "ptychoagent/preprocess", f"{steps!r}: a list of {list(PREPROCESS_STEPS)}"
                )
            preprocess = tuple(steps)
            raw = _attr_json(meta, "parameters", "ptychoagent/parameters", {})
            if not isinstance(raw, dict):
                raise ExperimentError("ptychoagent/parameters", "must be a JSON object")
            parameters = {str(k): str(v) for k, v in raw.items()}
            sample_type = _attr_text(meta, "sample_type")
            instrument = _attr_text(meta, "instrument")
            source_name = _attr_text(meta, "source")
        truth = _truth(h5, n, pixel_h, size, h) if "truth" in h5 else None  # type: ignore[arg-type]
        return Experiment(
            patterns=patterns,
            positions_px=positions,
            probe=probe,
            object=obj,
            geometry=geometry,
            config=config,
            preprocess=preprocess,
            valid_pixel_mask=mask,
            name=_attr_text(h5, "name"),
            comments=_attr_text(h5, "comments"),
            sample_type=sample_type,
            instrument=instrument,
            parameters=parameters,
            source=source_name,
            photon_count=float(h5.attrs.get("probe_photon_count", 0.0)),
            exposure_time_s=float(h5.attrs.get("exposure_time_s", 0.0)),
            truth=truth,
        )


def _truth(h5: Any, n: int, pixel: float, size: tuple[int, int], h: int) -> Truth:
    group = h5["truth"]
    obj = np.asarray(_dataset(group, "object")[()], dtype=np.complex64)
    if obj.ndim == 3:
        obj = obj[0]
    if obj.shape != size:
        raise ExperimentError("truth/object", f"shape {obj.shape}, expected {size} like object")
    probe = np.asarray(_dataset(group, "probe")[()], dtype=np.complex64)
    if probe.shape[-2:] != (h, h):
        raise ExperimentError("truth/probe", f"shape {probe.shape}, expected (modes, {h}, {h})")
    clean = None
    if "clean_config" in group.attrs:
        clean = ReconConfig.model_validate(
            _attr_json(group, "clean_config", "truth/clean_config", {})
        )
    return Truth(
        object=obj,
        probe=probe.reshape(-1, h, h),
        positions_px=_positions(group, "", n, pixel),
        labels=_attr_json(group, "labels", "truth/labels", {}),
        clean_config=clean,
        clean_preprocess=tuple(_attr_json(group, "clean_preprocess", "truth/clean_preprocess", [])),
    )


def read_reconstruction(source: Source) -> Reconstruction:
    """Read a file written by :func:`write_reconstruction`."""
    with _open(source) as h5:
        pixel = _attr_float(h5["object"], "pixel_height_m", "object.pixel_height_m", 1e-12, 1e-3)
        obj = np.asarray(h5["object"][()], dtype=np.complex64)
        probe = np.asarray(h5["probe"][()], dtype=np.complex64)
        n = int(h5["probe_position_x_m"].shape[0])
        group = h5.get("ptychoagent")
        return Reconstruction(
            object=obj,
            probe=probe,
            positions_px=_positions(h5, "", n, pixel),
            losses=tuple(float(v) for v in h5["loss_values"][()]),
            config=_config(h5),
            metrics=_attr_json(group, "metrics", "ptychoagent/metrics", {}) if group else {},
            info=_attr_json(group, "info", "ptychoagent/info", {}) if group else {},
        )


__all__ = ["check_inside", "read_experiment", "read_reconstruction"]
