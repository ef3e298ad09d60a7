"""A benchmark report as the console's tables (rich)."""

from __future__ import annotations

from rich.table import Table

from gateway.bench import baselines as bl
from gateway.bench.report.markdown import baseline_rows, is_best, marked, mean_std_text
from gateway.bench.report.model import Report
from ptychobench.closed_loop import BASELINE_ARMS
from ptychobench.report.tables import estimate, number, rows_and_ks, strategy_label


def render_tables(report: Report) -> list[Table]:
    """One console table per task: mean ± std over seeds of micro-F1, rows model ×
    strategy, columns k, the best cell in bold, the baselines below the models and
    :data:`~gateway.bench.baselines.MARK` on cells that do not clear the best constant."""
    tables: list[Table] = []
    for task in report.tasks:
        cells = report.task_cells(task)
        rows, ks = rows_and_ks(cells)
        table = Table(title=f"{task}: micro-F1, mean ± std over seeds", caption=bl.LEGEND)
        table.add_column("model")
        table.add_column("strategy")
        for k in ks:
            table.add_column(f"k={k}", justify="right")
        lookup = {(c["model"], c["strategy"], c["k"]): c for c in cells}
        for model, strategy in rows:
            values: list[str] = []
            for k in ks:
                cell = lookup.get((model, strategy, k))
                text = "" if cell is None else mean_std_text(cell)
                if cell is not None and is_best(report, cell):
                    text = f"[bold]{text}[/bold]"
                values.append(marked(text, cell))
            table.add_row(model, strategy_label(strategy), *values)
        for row in baseline_rows(report, task, ks, ci=False):
            table.add_row(*row, style="dim")
        tables.append(table)
    if report.closed_loop:
        tables.append(_closed_loop_table(report))
    return tables


def _closed_loop_table(report: Report) -> Table:
    table = Table(title="closed loop: fix rate [95 % CI], paired Δ vs none and vs oracle")
    for name in ("arm", "n", "errors", "fix rate", "median gain", "Δ none", "Δ oracle"):
        table.add_column(name, justify="left" if name == "arm" else "right")
    for arm in report.closed_loop:
        ci = arm["fix_rate_ci"]
        rate = "–" if ci is None else estimate(arm["fix_rate"], ci[0], ci[1], ".2f")
        deltas = [
            "–" if arm[vs] is None else f"{arm[vs]['delta']:+.2f} (p={arm[vs]['p_value']:.3f})"
            for vs in ("vs_none", "vs_oracle")
        ]
        table.add_row(
            arm["arm"],
            str(arm["n"]),
            str(arm["errors"]),
            rate,
            number(arm["median_gain"], ".2f"),
            *deltas,
            style="dim" if arm["arm"] in BASELINE_ARMS else None,
        )
    return table


__all__ = ["render_tables"]
