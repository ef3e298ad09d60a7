"""A benchmark report's files: ``cells.csv``, the plot, and :func:`write_report`, which
writes them all, each atomically."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Final

from gateway.bench import baselines as bl
from gateway.bench.report.markdown import render_markdown
from gateway.bench.report.model import FILES, Report
from ptychobench.report.io import write_atomic
from ptychobench.report.plots import f1_vs_k_png

CSV_COLUMNS: Final[tuple[str, ...]] = (
    "task",
    "model",
    "strategy",
    "k",
    "sources",
    "adapters",
    "n_items",
    "n_scored",
    "errors",
    "parse_failures",
    "n_seeds",
    "seeds",
    "mean_micro_f1",
    "std_micro_f1",
    "micro_f1",
    "ci_low",
    "ci_high",
    "micro_precision",
    "micro_recall",
    "macro_f1",
    "macro_f1_present",
    "mean_latency_s",
    "parity_micro_f1",
    "clears_constant",
    "minus_constant",
    "minus_constant_ci_low",
    "minus_constant_ci_high",
    "minus_constant_p",
)


def render_csv(report: Report) -> str:
    """One row per cell (what ``cells.csv`` holds); lists are space-separated, missing
    numbers empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for cell in report.cells:
        row: list[str] = []
        for column in CSV_COLUMNS:
            value = cell[column]  # type: ignore[literal-required]
            if value is None:
                row.append("")
            elif isinstance(value, list):
                row.append(" ".join(str(v) for v in value))
            else:
                row.append(str(value))
        writer.writerow(row)
    return out.getvalue()


def render_plot(report: Report) -> bytes:
    """Mean micro-F1 against k, one subplot per task, one line per model × strategy,
    error bars the std over seeds; one colour per model, one line style per strategy; a
    model that takes no examples is a dotted level, the baselines grey levels
    (:func:`ptychobench.report.plots.f1_vs_k_png`). PNG bytes."""
    levels = [(b["task"], b["micro_f1"], bl.label(b["name"])) for b in report.baselines]
    return f1_vs_k_png(report.tasks, report.cells, levels)


def write_report(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write ``report.md``, ``cells.csv``, ``report.json``, ``f1_vs_k.png`` and
    ``baselines.csv`` into ``out_dir`` (made if need be), each atomically; returns their
    paths by the keys of :data:`FILES`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "md": render_markdown(report).encode(),
        "csv": render_csv(report).encode(),
        "json": report.to_json().encode(),
        "png": render_plot(report),
        "baselines": bl.render_csv(report.baselines).encode(),
    }
    paths: dict[str, Path] = {}
    for key, data in contents.items():
        path = out_dir / FILES[key]
        write_atomic(path, data)
        paths[key] = path
    return paths


__all__ = ["CSV_COLUMNS", "render_csv", "render_plot", "write_report"]
