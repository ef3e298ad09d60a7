"""Writing experiments and reconstructions (the layout: the package's docstring)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ptychobench.experiment_io.model import (
    LAYOUT,
    ComplexArray,
    Experiment,
    FloatArray,
    Geometry,
    Reconstruction,
    Source,
)


def _write_product(
    h5: Any,
    *,
    name: str,
    comments: str,
    geometry: Geometry,
    photon_count: float,
    exposure_time_s: float,
    positions_px: FloatArray,
    probe: ComplexArray,
    obj: ComplexArray,
    losses: tuple[float, ...],
) -> None:
    """ptychodus's product datasets and attributes."""
    h5.attrs["layout"] = LAYOUT
    h5.attrs["name"] = name
    h5.attrs["comments"] = comments
    h5.attrs["detector_object_distance_m"] = geometry.detector_distance_m
    h5.attrs["probe_energy_eV"] = geometry.energy_ev
    h5.attrs["probe_photon_count"] = photon_count
    h5.attrs["exposure_time_s"] = exposure_time_s
    h5.attrs["detector_pixel_width_m"] = geometry.detector_pixel_size_m
    h5.attrs["detector_pixel_height_m"] = geometry.detector_pixel_size_m
    pixel = geometry.object_pixel_size_m
    h5.create_dataset("probe_position_indexes", data=np.arange(len(positions_px), dtype=np.int64))
    h5.create_dataset("probe_position_x_m", data=positions_px[:, 1] * pixel)
    h5.create_dataset("probe_position_y_m", data=positions_px[:, 0] * pixel)
    h5_probe = h5.create_dataset("probe", data=probe.astype(np.complex64))
    h5_probe.attrs["pixel_width_m"] = pixel
    h5_probe.attrs["pixel_height_m"] = pixel
    h5_object = h5.create_dataset("object", data=obj.astype(np.complex64), compression="gzip")
    h5_object.attrs["pixel_width_m"] = pixel
    h5_object.attrs["pixel_height_m"] = pixel
    h5_object.attrs["center_x_m"] = 0.0
    h5_object.attrs["center_y_m"] = 0.0
    h5.create_dataset("object_layer_spacing_m", data=np.zeros(obj.shape[0] - 1))
    h5.create_dataset("loss_epochs", data=np.arange(len(losses), dtype=np.int64))
    h5.create_dataset("loss_values", data=np.asarray(losses, dtype=np.float64))


def write_experiment(target: Source, experiment: Experiment) -> None:
    """Write ``experiment`` (and its truth, if any) to an HDF5 file."""
    import h5py

    with h5py.File(target, "w") as h5:
        _write_product(
            h5,
            name=experiment.name,
            comments=experiment.comments,
            geometry=experiment.geometry,
            photon_count=experiment.photon_count,
            exposure_time_s=experiment.exposure_time_s,
            positions_px=experiment.positions_px,
            probe=experiment.probe,
            obj=experiment.object,
            losses=(),
        )
        h5.create_dataset(
            "dp",
            data=experiment.patterns.astype(np.float32),
            compression="gzip",
            shuffle=True,
            chunks=(1, *experiment.patterns.shape[1:]),
        )
        if experiment.valid_pixel_mask is not None:
            h5.create_dataset("valid_pixel_mask", data=experiment.valid_pixel_mask.astype(bool))
        group = h5.create_group("ptychoagent")
        group.attrs["recon_config"] = experiment.config.model_dump_json()
        group.attrs["preprocess"] = json.dumps(list(experiment.preprocess))
        group.attrs["parameters"] = json.dumps(dict(experiment.parameters))
        group.attrs["sample_type"] = experiment.sample_type
        group.attrs["instrument"] = experiment.instrument
        group.attrs["source"] = experiment.source
        if experiment.truth is not None:
            truth = experiment.truth
            t = h5.create_group("truth")
            t.create_dataset(
                "object", data=truth.object[None].astype(np.complex64), compression="gzip"
            )
            t.create_dataset("probe", data=truth.probe.astype(np.complex64))
            pixel = experiment.geometry.object_pixel_size_m
            t.create_dataset("probe_position_x_m", data=truth.positions_px[:, 1] * pixel)
            t.create_dataset("probe_position_y_m", data=truth.positions_px[:, 0] * pixel)
            t.attrs["labels"] = json.dumps(dict(truth.labels))
            if truth.clean_config is not None:
                t.attrs["clean_config"] = truth.clean_config.model_dump_json()
            t.attrs["clean_preprocess"] = json.dumps(list(truth.clean_preprocess))


def write_reconstruction(
    target: Source,
    reconstruction: Reconstruction,
    geometry: Geometry,
    name: str = "",
) -> None:
    """Write a reconstruction as a ptychodus product (no ``/dp``)."""
    import h5py

    with h5py.File(target, "w") as h5:
        _write_product(
            h5,
            name=name,
            comments="reconstructed with Pty-chi by PtychoAgent",
            geometry=geometry,
            photon_count=0.0,
            exposure_time_s=0.0,
            positions_px=reconstruction.positions_px,
            probe=reconstruction.probe,
            obj=reconstruction.object,
            losses=reconstruction.losses,
        )
        group = h5.create_group("ptychoagent")
        group.attrs["recon_config"] = reconstruction.config.model_dump_json()
        group.attrs["metrics"] = json.dumps(dict(reconstruction.metrics))
        group.attrs["info"] = json.dumps(dict(reconstruction.info))


__all__ = ["write_experiment", "write_reconstruction"]
