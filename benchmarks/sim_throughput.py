"""How fast PtychoBench-Sim makes labelled samples, and what a reconstruction costs by size.

Two measurements, each against a baseline taken in the same run (machines are shared
and noisy, so ratios are what to compare):

1. **Time per reconstruction by size** — LSQML, one torch thread, a fixed number of
   epochs, for object/pattern sizes from 96²/32² up to 256²/64²; reported as seconds per
   epoch and as a ratio to the smallest size. With ``--device cuda`` (or ``auto`` on a
   machine with a GPU) the same sizes run on the GPU too, and the ratio CPU/GPU is printed.
2. **Labelled samples per hour** — the generator's detect units (clean + faulted
   reconstruction, metrics, checks, image) for the first ``--samples`` samples of the
   default plan, with 1 worker and with ``--workers`` workers; the speed-up is the ratio.

    .venv/bin/python benchmarks/sim_throughput.py [--samples 6] [--workers 2] [--device auto]

Needs the simulation extra (torch, ptychi).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ptychobench.sim.forward import simulate
from ptychobench.sim.generate import SimSettings, _run_units, detect_unit, make_plan
from ptychobench.sim.instruments import INSTRUMENTS, make_probe, make_probe_modes, make_scan
from ptychobench.sim.objects import make_object
from ptychobench.sim.reconstruct import ReconConfig, reconstruct, resolve_device

SIZES = ((96, 32), (128, 64), (192, 64), (256, 64))


def time_reconstruction(
    object_size: int, probe_size: int, epochs: int, device: str
) -> tuple[float, int]:
    """Seconds per epoch (best of two runs) and the number of scan positions."""
    instrument = INSTRUMENTS["2-ID-D"]
    rng = np.random.default_rng(0)
    obj = make_object("Integrated circuit", object_size, rng)
    probe = make_probe(instrument, probe_size, rng)
    positions = make_scan(instrument, object_size, probe_size, rng, step_px=probe_size / 8)
    data = simulate(obj, make_probe_modes(probe, 1, 1.0), positions, 1e6, rng)
    config = ReconConfig(num_epochs=epochs, batch_size=max(8, len(positions) // 4), device=device)  # type: ignore[arg-type]
    best = np.inf
    for _ in range(2):
        result = reconstruct(data, probe, config=config, object_size=object_size)
        best = min(best, result.seconds / epochs)
    return float(best), len(positions)


def samples_per_hour(n_samples: int, workers: int) -> float:
    """Detect units of the first ``n_samples`` plan items with ``workers`` (the same
    samples every time, so that rates compare); worker start-up is included."""
    settings = SimSettings(seed=0)
    items = make_plan(settings)[:n_samples]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        _run_units(
            [(detect_unit, (item, settings, Path(folder))) for item in items],
            workers,
            "bench",
            None,
        )
        seconds = time.perf_counter() - started
    return 3600.0 * n_samples / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=6, help="samples per throughput run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-sizes", action="store_true")
    args = parser.parse_args()

    devices = ["cpu"]
    if resolve_device(args.device) == "cuda":
        devices.append("cuda")
    if not args.skip_sizes:
        print(f"reconstruction time by size (LSQML, {args.epochs} epochs, 1 torch thread on CPU)")
    baseline: dict[str, float] = {}
    for device in devices if not args.skip_sizes else []:
        for object_size, probe_size in SIZES:
            per_epoch, n = time_reconstruction(object_size, probe_size, args.epochs, device)
            baseline.setdefault(device, per_epoch)
            line = (
                f"  {device:4} object {object_size:3}² patterns {probe_size:2}² {n:4} positions: "
                f"{1000 * per_epoch:7.1f} ms/epoch  ×{per_epoch / baseline[device]:.1f} smallest"
            )
            if device == "cuda":
                cpu, _ = time_reconstruction(object_size, probe_size, args.epochs, "cpu")
                line += f"  (CPU/GPU {cpu / per_epoch:.1f}×)"
            print(line, flush=True)
    if args.skip_throughput:
        return
    print(f"labelled samples per hour (default plan, first {args.samples} samples, 128² objects)")
    one = samples_per_hour(args.samples, 1)
    print(f"  1 worker : {one:7.0f} samples/h", flush=True)
    many = samples_per_hour(args.samples, args.workers)
    print(f"  {args.workers} workers: {many:7.0f} samples/h  (×{many / one:.2f} one worker)")
    hours = 391 / many
    print(f"  the default 391-sample set would take about {60 * hours:.0f} min at this rate")


if __name__ == "__main__":
    main()
