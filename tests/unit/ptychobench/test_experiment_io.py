"""The experiment HDF5 layout: round trips, ptychodus's names, and refusals that name
the field at fault."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from ptychobench.experiment_io import (
    LAYOUT,
    Experiment,
    ExperimentError,
    Geometry,
    Limits,
    Reconstruction,
    Truth,
    read_experiment,
    read_reconstruction,
    write_experiment,
    write_reconstruction,
)
from ptychobench.sim.reconstruct import ReconConfig


def tiny_experiment(truth: bool = True) -> Experiment:
    """16-px patterns over a 64-px object, 25 positions, with a truth."""
    rng = np.random.default_rng(0)
    grid = np.arange(-12.0, 13.0, 6.0)
    positions = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    obj = np.exp(1j * rng.uniform(0, 1, (64, 64))).astype(np.complex64)
    return Experiment(
        patterns=rng.poisson(50, (25, 16, 16)).astype(np.float32),
        positions_px=positions,
        probe=(rng.normal(size=(1, 2, 16, 16)) + 1j).astype(np.complex64),
        object=np.ones((1, 64, 64), dtype=np.complex64),
        geometry=Geometry.for_object_pixel(8800.0, 10e-9, 16),
        config=ReconConfig(num_epochs=3, batch_size=5),
        preprocess=("recenter",),
        valid_pixel_mask=np.ones((16, 16), dtype=bool),
        name="tiny",
        sample_type="Integrated circuit",
        instrument="Velociprobe",
        parameters={"iterations": "3"},
        source="test",
        photon_count=1e5,
        truth=Truth(
            object=obj,
            probe=np.ones((2, 16, 16), dtype=np.complex64),
            positions_px=positions + 0.5,
            labels={"letters": ["K"]},
            clean_config=ReconConfig(num_epochs=40),
        )
        if truth
        else None,
    )


def _write(tmp_path: Path, experiment: Experiment | None = None) -> Path:
    path = tmp_path / "experiment.h5"
    write_experiment(path, experiment or tiny_experiment())
    return path


def test_an_experiment_round_trips(tmp_path: Path) -> None:
    original = tiny_experiment()
    back = read_experiment(_write(tmp_path, original))
    for name in ("patterns", "positions_px", "probe", "object", "valid_pixel_mask"):
        np.testing.assert_allclose(getattr(back, name), getattr(original, name), rtol=1e-12)
    assert back.geometry == pytest.approx(original.geometry)  # type: ignore[comparison-overlap]
    for name in ("config", "preprocess", "name", "sample_type", "instrument", "source"):
        assert getattr(back, name) == getattr(original, name)
    assert dict(back.parameters) == {"iterations": "3"}
    assert back.truth is not None
    assert original.truth is not None
    np.testing.assert_array_equal(back.truth.object, original.truth.object)
    np.testing.assert_allclose(back.truth.positions_px, original.truth.positions_px)
    assert back.truth.labels == {"letters": ["K"]}
    assert back.truth.clean_config == ReconConfig(num_epochs=40)


def test_without_truth_and_from_memory() -> None:
    buffer = io.BytesIO()
    write_experiment(buffer, tiny_experiment(truth=False))
    buffer.seek(0)
    assert read_experiment(buffer).truth is None


def test_the_names_are_ptychodus_and_pty_chis(tmp_path: Path) -> None:
    """Pty-chi's test loader reads ``dp`` from one file and probe, positions and the
    object's pixel size from the other; ptychodus's product reader needs these too."""
    with h5py.File(_write(tmp_path), "r") as h5:
        assert h5.attrs["layout"] == LAYOUT
        assert h5["dp"].shape == (25, 16, 16)
        for name in ("name", "comments", "detector_object_distance_m", "probe_energy_eV"):
            assert name in h5.attrs
        for name in ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m"):
            assert h5[name].shape == (25,)
        assert h5["object"].attrs["pixel_height_m"] == pytest.approx(10e-9)
        assert h5["probe"].attrs["pixel_width_m"] == pytest.approx(10e-9)
        assert h5["probe_position_y_m"][0] == pytest.approx(-12 * 10e-9)
        assert {"object_layer_spacing_m", "loss_values", "loss_epochs"} <= set(h5)
        assert h5["truth/object"].shape == (1, 64, 64)


def _edit(path: Path, change: Callable[[Any], None]) -> Path:
    with h5py.File(path, "a") as h5:
        change(h5)
    return path


def _replace(name: str, data: Any) -> Callable[[Any], None]:
    def change(h5: Any) -> None:
        attrs = dict(h5[name].attrs) if name in h5 else {}
        del h5[name]
        h5.create_dataset(name, data=data)
        h5[name].attrs.update(attrs)

    return change


BAD: dict[str, tuple[Callable[[Any], None], str, str]] = {
    "nan pattern": (_replace("dp", np.full((25, 16, 16), np.nan)), "dp", "NaN"),
    "2-D patterns": (_replace("dp", np.ones((25, 16))), "dp", "shape"),
    "no patterns": (lambda h5: h5.__delitem__("dp"), "dp", "missing"),
    "negative counts": (_replace("dp", -np.ones((25, 16, 16))), "dp", "negative"),
    "complex patterns": (_replace("dp", np.ones((25, 16, 16), complex)), "dp", "dtype"),
    "positions too few": (
        _replace("probe_position_x_m", np.zeros(24)),
        "probe_position_x_m",
        "one per pattern",
    ),
    "infinite position": (
        _replace("probe_position_y_m", np.r_[np.inf, np.zeros(24)]),
        "probe_position_y_m",
        "infinite",
    ),
    "outside the object": (
        _replace("probe_position_x_m", np.r_[40e-8, np.zeros(24)]),
        "probe_position_x_m",
        "outside",
    ),
    "probe size": (
        _replace("probe", np.ones((1, 32, 32), complex)),
        "probe",
        "size of the patterns",
    ),
    "probe zero": (_replace("probe", np.zeros((1, 16, 16), complex)), "probe", "zero"),
    "object smaller than a pattern": (
        _replace("object", np.ones((1, 8, 8), complex)),
        "object",
        "between",
    ),
    "energy": (
        lambda h5: h5.attrs.__setitem__("probe_energy_eV", -1.0),
        "probe_energy_eV",
        "outside",
    ),
    "geometry disagrees": (
        lambda h5: h5.attrs.__setitem__("detector_object_distance_m", 10.0),
        "object.pixel_height_m",
        "far-field",
    ),
    "bad option": (
        lambda h5: h5["ptychoagent"].attrs.__setitem__("recon_config", '{"num_epochs": 0}'),
        "ptychoagent/recon_config.num_epochs",
        "greater than or equal to 1",
    ),
    "unknown option": (
        lambda h5: h5["ptychoagent"].attrs.__setitem__("recon_config", '{"epochs": 3}'),
        "ptychoagent/recon_config.epochs",
        "Extra inputs",
    ),
    "bad preprocessing": (
        lambda h5: h5["ptychoagent"].attrs.__setitem__("preprocess", '["rotate"]'),
        "ptychoagent/preprocess",
        "recenter",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_experiment_is_refused_naming_the_field(tmp_path: Path, case: str) -> None:
    change, field, words = BAD[case]
    path = _edit(_write(tmp_path), change)
    with pytest.raises(ExperimentError) as caught:
        read_experiment(path)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_absurd_sizes_are_refused_before_the_arrays_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(ExperimentError, match=r"^dp: 25 patterns; at most 10"):
        read_experiment(path, Limits(max_positions=10))
    with pytest.raises(ExperimentError, match=r"^dp: 25,600 bytes"):
        read_experiment(path, Limits(max_pattern_bytes=1000))
    with pytest.raises(ExperimentError, match=r"^object: 64×64 px"):
        read_experiment(path, Limits(max_object_px=32))


def test_a_file_that_is_not_hdf5_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(ExperimentError, match=r"^file: not a readable HDF5 file"):
        read_experiment(path)


def test_a_reconstruction_round_trips(tmp_path: Path) -> None:
    experiment = tiny_experiment()
    result = Reconstruction(
        object=experiment.object * 2,
        probe=experiment.probe,
        positions_px=experiment.positions_px + 0.25,
        losses=(3.0, 2.0, 1.5),
        config=experiment.config,
        metrics={"sharpness": 0.2},
        info={"device": "cpu"},
    )
    path = tmp_path / "result.h5"
    write_reconstruction(path, result, experiment.geometry, name="tiny")
    back = read_reconstruction(path)
    np.testing.assert_array_equal(back.object, result.object)
    np.testing.assert_allclose(back.positions_px, result.positions_px)
    assert back.losses == (3.0, 2.0, 1.5)
    assert back.config == result.config
    assert back.metrics == {"sharpness": 0.2}
    assert back.info == {"device": "cpu"}
    with h5py.File(path, "r") as h5:
        assert "dp" not in h5
        assert list(h5["loss_epochs"][()]) == [0, 1, 2]


def test_replace_keeps_the_dataclass_usable() -> None:
    experiment = replace(tiny_experiment(), preprocess=())
    assert experiment.n_positions == 25
    assert experiment.object_shape == (64, 64)
    assert experiment.probe_size == 16
