"""A benchmark run reported in the paper's form.

:func:`build_report` turns the answered items of a run (:class:`~gateway.bench.records.
ItemResult`) into a :class:`Report` of plain, JSON-ready data; it reads and writes
nothing. :func:`write_report` writes it out (``report.md``, ``cells.csv``,
``report.json``, ``f1_vs_k.png``, ``baselines.csv``) and :func:`render_tables` gives
the console's tables.

What the numbers are (PtychoBench's metric, over the task's fixed vocabulary, see
:mod:`ptychobench.metrics`):

* A *cell* is one (task, model, strategy, k). Its ``mean_micro_f1 ± std_micro_f1`` is
  the mean and the population standard deviation (NumPy's default, as published) over
  seeds of the micro-F1 of each seed's answers: the paper's Tables 1 and 2.
* ``micro_f1`` pools every seed's answers of the cell and scores them together; its 95 %
  percentile interval comes from a bootstrap over those pooled items
  (:func:`ptychobench.bootstrap.bootstrap`): Tables 7 and 8. ``macro_f1`` averages the
  per-class F1 of the pooled answers over the whole vocabulary.
* Items with ``error`` set (no answer after the retries) are left out of every score and
  counted under ``errors``; answers with fragments that matched no label are scored on
  what could be read and counted under ``parse_failures``.
* Items with strategy ``"none"`` take no examples (k = 0, the classifier). They belong
  to every strategy of their task, so the same k = 0 answers fill the k = 0 column of
  the SSFS row and of the RFS row. A model with only such items (the classifier) is
  reported under strategy ``"none"``.
* ``best`` is, for each task, the cell with the highest mean micro-F1 (ties go to the
  first cell in report order, the others are listed). For it, per-class precision,
  recall and F1 over the vocabulary (Table 9) and micro scores per sample type
  (Table 10) of its pooled answers.
* ``baselines`` are, per task, the best constant answer (an oracle chosen on the
  evaluated items) and a simple rule, scored on the same items with the same bootstrap;
  every cell carries whether its interval clears the best constant and its paired
  difference from it, and one that does not is marked wherever it is shown
  (:mod:`gateway.bench.baselines`).
* ``comparisons`` are paired bootstraps (:func:`ptychobench.bootstrap.paired_bootstrap`)
  of pooled micro-F1, A − B, on the same items matched by (sample id, seed) within the
  same task, strategy and k, items that failed in either system left out: each pair of
  models of ``config["comparisons"]`` (default: ``sft`` against ``base``) at every
  strategy and k both answered (k = 0 once, under ``"none"``), and SSFS against RFS for
  each model at each k > 0.
* ``closed_loop`` (the closed-loop task, :mod:`ptychobench.closed_loop`): one arm per
  baseline (none, random, constant, oracle, rule) and per model × strategy × k (seeds pooled; k = 0
  once, without examples): the fix rate (share of samples whose letters closed at least
  ``min_fix_gain`` of the NRMSE gap to the clean reconstruction) with its bootstrap
  interval, the median gain, the paired fix-rate difference from none and from oracle
  (interval and two-sided p), rounds, reconstructions and seconds per round.

Everything is sorted, and the only times in the output are those of the run record, so
the same items give byte-identical ``report.json``, ``cells.csv`` and ``report.md``.

The package's rooms: :mod:`.model` (what a report holds), :mod:`.build` (items → report),
:mod:`.compare` (paired comparisons), :mod:`.markdown` and :mod:`.console` (its text),
:mod:`.files` (CSV, plot, writing). Statistics, tables, plots and atomic writes common
to the quickstart and ``ptychoagent score`` live in :mod:`ptychobench.report`.
"""

from gateway.bench.report.build import build_report
from gateway.bench.report.console import render_tables
from gateway.bench.report.files import CSV_COLUMNS, render_csv, render_plot, write_report
from gateway.bench.report.markdown import render_markdown
from gateway.bench.report.model import (
    CONFIDENCE,
    DEFAULT_COMPARISONS,
    FILES,
    NO_STRATEGY,
    STRATEGY_ORDER,
    Best,
    Cell,
    Comparison,
    Report,
)

__all__ = [
    "CONFIDENCE",
    "CSV_COLUMNS",
    "DEFAULT_COMPARISONS",
    "FILES",
    "NO_STRATEGY",
    "STRATEGY_ORDER",
    "Best",
    "Cell",
    "Comparison",
    "Report",
    "build_report",
    "render_csv",
    "render_markdown",
    "render_plot",
    "render_tables",
    "write_report",
]
