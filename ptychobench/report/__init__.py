"""Reporting shared by every place that turns answers into numbers and files: the
quickstart (:mod:`ptychoagent.quickstart`), ``ptychoagent score``
(:mod:`ptychobench.results`) and the benchmark report (:mod:`gateway.bench.report`).

* :mod:`~ptychobench.report.stats` — label matrices, pooled scores with their bootstrap
  interval, mean and population std over seeds, per-class rows;
* :mod:`~ptychobench.report.tables` — number and interval text, Markdown tables, the
  order and names of the example strategies in a table;
* :mod:`~ptychobench.report.plots` — micro-F1 against k as PNG bytes;
* :mod:`~ptychobench.report.io` — atomic file writes.

No web framework and no service is imported here; matplotlib only inside the plot.
"""

from ptychobench.report.io import write_atomic
from ptychobench.report.stats import (
    ClassScore,
    Pooled,
    class_scores,
    label_matrices,
    mean,
    mean_std,
    pooled,
)
from ptychobench.report.tables import (
    MISSING,
    NO_STRATEGY,
    STRATEGY_ORDER,
    interval,
    md_table,
    md_text,
    number,
    rows_and_ks,
    strategy_label,
    strategy_rank,
)

__all__ = [
    "MISSING",
    "NO_STRATEGY",
    "STRATEGY_ORDER",
    "ClassScore",
    "Pooled",
    "class_scores",
    "interval",
    "label_matrices",
    "md_table",
    "md_text",
    "mean",
    "mean_std",
    "number",
    "pooled",
    "rows_and_ks",
    "strategy_label",
    "strategy_rank",
    "write_atomic",
]
