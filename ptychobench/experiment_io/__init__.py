"""Ptychography experiments and reconstructions as HDF5 files, in ptychodus's layout.

One file holds what a reconstruction needs. Its names are those of ptychodus, the
APS's ptychography GUI, whose files Pty-chi's own tests read (``ptychodus_dp.hdf5``
for the patterns, ``ptychodus_para.hdf5`` for the rest): the diffraction patterns in
``/dp`` (ptychodus's fold_slice diffraction file) and the product's datasets and
attributes beside them (ptychodus ``h5_product_file``: ``probe``, ``object``,
``probe_position_x_m``/``_y_m``, geometry attributes, ``loss_values``). So the same
file can be given to Pty-chi's test loader as both of its files, and opened by
ptychodus as a product. What ptychodus has no name for lives in two groups:
``/ptychoagent`` (the reconstruction options as JSON, preprocessing steps, sample
description) and ``/truth`` (simulated experiments only: the true object, probe,
positions and labels, for scoring). The full layout is in ``docs/reconstructor.md``.

A reconstruction is written in the same layout without ``/dp``: the reconstructed
``object`` and ``probe``, the corrected positions and the loss history.

h5py is imported inside the functions (it is light, but the CLI imports this module).

The package's rooms: :mod:`.model` (the dataclasses and limits), :mod:`.write` and
:mod:`.read`.
"""

from ptychobench.experiment_io.model import (
    HC_EV_M,
    LAYOUT,
    PREPROCESS_STEPS,
    Experiment,
    ExperimentError,
    Geometry,
    Limits,
    Reconstruction,
    Truth,
)
from ptychobench.experiment_io.read import check_inside, read_experiment, read_reconstruction
from ptychobench.experiment_io.write import write_experiment, write_reconstruction

__all__ = [
    "HC_EV_M",
    "LAYOUT",
    "PREPROCESS_STEPS",
    "Experiment",
    "ExperimentError",
    "Geometry",
    "Limits",
    "Reconstruction",
    "Truth",
    "check_inside",
    "read_experiment",
    "read_reconstruction",
    "write_experiment",
    "write_reconstruction",
]
