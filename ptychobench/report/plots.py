"""Micro-F1 against k as a PNG (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from ptychobench.report.tables import NO_STRATEGY, rows_and_ks, strategy_label

LINE_STYLES = {"ssfs": "-", "rfs": "--", "semantic": ":"}


def f1_vs_k_png(
    tasks: Sequence[str],
    cells: Sequence[Mapping[str, Any]],
    levels: Sequence[tuple[str, float, str]] = (),
) -> bytes:
    """Mean micro-F1 against k, one subplot per task, one line per model × strategy,
    error bars the std over seeds; one colour per model, one line style per strategy; a
    model that takes no examples is a dotted level. ``levels`` are (task, value, label)
    grey levels (the baselines, the first two of a task dashed and dash-dotted). Cells
    are mappings with ``task``, ``model``, ``strategy``, ``k``, ``mean_micro_f1`` and
    ``std_micro_f1``. PNG bytes, the same for the same input."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(tasks) or ["(no tasks)"]
    figure = Figure(figsize=(5.5 * len(tasks), 4.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    models = sorted({cell["model"] for cell in cells})  # the same colour in every task
    for ax, task in zip(axes, tasks, strict=True):
        shown = [c for c in cells if c["task"] == task and c["mean_micro_f1"] is not None]
        rows, ks = rows_and_ks(shown)
        for model, strategy in rows:
            color = f"C{models.index(model) % 10}"
            line = [c for c in shown if (c["model"], c["strategy"]) == (model, strategy)]
            xs = [c["k"] for c in line]
            ys = [float(c["mean_micro_f1"] or 0.0) for c in line]
            errors = [float(c["std_micro_f1"] or 0.0) for c in line]
            if strategy == NO_STRATEGY and len(set(ks)) > 1:
                ax.axhline(
                    ys[0], color=color, linestyle=":", linewidth=1.2, label=f"{model} (no examples)"
                )
            else:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=errors,
                    color=color,
                    linestyle=LINE_STYLES.get(strategy, "-."),
                    marker="o",
                    capsize=3,
                    label=f"{model} {strategy_label(strategy)}",
                )
        for (_, value, label), style in zip(
            (level for level in levels if level[0] == task), ("--", "-."), strict=False
        ):
            ax.axhline(value, color="0.4", linestyle=style, linewidth=1.0, label=label)
        ax.set_title(task)
        ax.set_xlabel("k (examples)")
        ax.set_ylabel("micro-F1 (mean ± std over seeds)")
        ax.set_ylim(0.0, 1.0)
        if ks:
            ax.set_xticks(ks)
            ax.legend(fontsize="small", loc="best")
        else:
            ax.text(0.5, 0.5, "no scored items", ha="center", va="center", transform=ax.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


__all__ = ["LINE_STYLES", "f1_vs_k_png"]
