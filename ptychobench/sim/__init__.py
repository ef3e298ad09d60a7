"""PtychoBench-Sim: simulated ptychography with known causes, reconstructed by Pty-chi.

The pieces, in the order an experiment happens:

- ``objects``: procedural complex transmissions, one look and one phase/absorption
  range per sample type (``SAMPLE_TYPES``, ``make_object``, ``object_metadata``);
- ``instruments``: beamlines (``INSTRUMENTS``) with their probes, partial coherence
  and scans (``make_probe``, ``make_probe_modes``, ``make_scan``);
- ``forward``: far-field diffraction in Pty-chi's own conventions, Poisson noise at
  the dose, and hooks for faults (``simulate`` → ``DiffractionData``);
- ``reconstruct``: the real Pty-chi (LSQML or ePIE) with ``ReconConfig`` knobs that
  match the recommendation options (``reconstruct`` → ``ReconResult``);
- ``metrics``: image metrics against the truth, which confirm labels;
- ``faults``: the fault recipes (what goes wrong, which labels, which fix letters);
- ``experiment``: one scene measured and reconstructed under a setup;
- ``text``: captions and advice (advice always maps back to its letters);
- ``generate``: the resumable generator behind ``ptychoagent sim``;
- ``sheet``: contact sheets (a few samples per label).

Only numpy and pydantic are imported here; torch and ptychi are imported by
``reconstruct`` when it runs (install them with the project's simulation extra).
"""

from ptychobench.sim.forward import DiffractionData, simulate
from ptychobench.sim.instruments import (
    INSTRUMENTS,
    Instrument,
    make_probe,
    make_probe_modes,
    make_scan,
)
from ptychobench.sim.objects import SAMPLE_TYPES, make_object, object_metadata
from ptychobench.sim.reconstruct import ReconConfig, ReconResult, reconstruct

__all__ = [
    "INSTRUMENTS",
    "SAMPLE_TYPES",
    "DiffractionData",
    "Instrument",
    "ReconConfig",
    "ReconResult",
    "make_object",
    "make_probe",
    "make_probe_modes",
    "make_scan",
    "object_metadata",
    "reconstruct",
    "simulate",
]
