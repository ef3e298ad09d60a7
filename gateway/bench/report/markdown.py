"""A benchmark report as Markdown (what ``report.md`` holds), and the text of its
cells that the console's tables share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.bench import baselines as bl
from gateway.bench.report.model import Cell, Comparison, Report
from ptychobench.closed_loop import render_table
from ptychobench.report.tables import (
    estimate,
    interval,
    md_table,
    md_text,
    number,
    rows_and_ks,
    strategy_label,
)


def mean_std_text(cell: Cell) -> str:
    if cell["mean_micro_f1"] is None:
        return "—"
    scored_seeds = sum(entry["micro_f1"] is not None for entry in cell["per_seed"])
    if scored_seeds < 2:
        return number(cell["mean_micro_f1"])
    return f"{number(cell['mean_micro_f1'])} ± {number(cell['std_micro_f1'])}"


def pooled_text(cell: Cell) -> str:
    if cell["micro_f1"] is None:
        return "—"
    return estimate(cell["micro_f1"], cell["ci_low"], cell["ci_high"])


def is_best(report: Report, cell: Cell) -> bool:
    best = report.best.get(cell["task"])
    return best is not None and (best["model"], best["strategy"], best["k"]) == (
        cell["model"],
        cell["strategy"],
        cell["k"],
    )


def baseline_rows(report: Report, task: str, ks: Sequence[int], ci: bool) -> list[list[str]]:
    """The baselines of a task as matrix rows: the same value under every k."""
    out: list[list[str]] = []
    for b in (b for b in report.baselines if b["task"] == task):
        text = number(b["micro_f1"])
        if ci:
            text += " " + interval(b["ci_low"], b["ci_high"])
        out.append([bl.label(b["name"]), "baseline", *[text] * len(ks)])
    return out


def marked(text: str, cell: Cell | None) -> str:
    return f"{text} {bl.MARK}" if cell is not None and bl.marked(cell) and text else text


def _md_matrix(report: Report, task: str, render: Any, ci: bool | None = None) -> list[str]:
    """Rows model × strategy, columns k; with ``ci`` not None, the baselines below (their
    intervals too when ``ci``)."""
    cells = report.task_cells(task)
    rows, ks = rows_and_ks(cells)
    lookup = {(c["model"], c["strategy"], c["k"]): c for c in cells}
    body: list[list[str]] = []
    for model, strategy in rows:
        values: list[str] = [model, strategy_label(strategy)]
        for k in ks:
            cell = lookup.get((model, strategy, k))
            text = "" if cell is None else str(render(cell))
            if cell is not None and is_best(report, cell) and text != "—":
                text = f"**{text}**"
            values.append(marked(text, cell))
        body.append(values)
    if ci is not None:
        body += baseline_rows(report, task, ks, ci)
    return md_table(["model", "strategy", *[f"k={k}" for k in ks]], body)


def _run_header(report: Report) -> list[str]:
    run = report.run
    lines = [f"# Benchmark report: {md_text(run.get('name', ''))}", ""]
    fields_ = (
        "run_id",
        "name",
        "config_hash",
        "git_revision",
        "dataset",
        "split",
        "started_at",
        "finished_at",
        "gateway_url",
    )
    lines += md_table(
        ["run", ""], [(name, "—" if run.get(name) is None else run[name]) for name in fields_]
    )
    lines += ["", "Configuration:", "", "```json"]
    lines += json.dumps(run.get("config", {}), indent=2, sort_keys=True).splitlines()
    lines += ["```", ""]
    if run.get("extra"):
        lines += ["Extra:", "", "```json"]
        lines += json.dumps(run["extra"], indent=2, sort_keys=True).splitlines()
        lines += ["```", ""]
    if run.get("provenance"):
        lines += _provenance(run["provenance"])
    return lines


def _provenance(made_with: dict[str, Any]) -> list[str]:
    """What made the run: adapters and their hashes, engines, prompts, data, packages."""
    lines = ["Made with:", ""]
    prompt, dataset = made_with.get("prompt") or {}, made_with.get("dataset") or {}
    lines += md_table(
        ["", ""],
        [
            ("prompt version", prompt.get("version", "—")),
            ("prompt sha256", prompt.get("sha256", "—")),
            ("dataset sha256", dataset.get("sha256") or "—"),
            ("git revision", made_with.get("git_revision") or "—"),
            *(
                (f"adapter {name}", digest or "—")
                for name, digest in made_with.get("adapters", {}).items()
            ),
            *(
                (name, version or "—")
                for name, version in (made_with.get("packages") or {}).items()
            ),
            *((f"machine {key}", value) for key, value in (made_with.get("machine") or {}).items()),
        ],
    )
    models = made_with.get("models") or []
    if models:
        lines += [
            "",
            *md_table(
                ["task", "model", "adapter", "served model", "engine URL"],
                [
                    (
                        m["task"],
                        m["name"],
                        m.get("adapter") or "—",
                        m.get("served_model") or "—",
                        m.get("engine_url") or "—",
                    )
                    for m in models
                ],
            ),
        ]
    return [*lines, ""]


def _explanation(report: Report) -> list[str]:
    settings = report.settings
    return [
        "## What the numbers are",
        "",
        "Micro-F1 of multi-label answers over the task's fixed vocabulary (12 artifact "
        "labels for detection, 24 option letters for recommendation). *Mean ± std* is "
        "the mean and the population standard deviation over seeds of each seed's "
        "micro-F1 (a value without ± comes from one seed); *pooled* scores every seed's "
        f"answers together, with a {settings['confidence']:.0%} percentile bootstrap "
        f"interval from {settings['n_resamples']} resamples of those items (seed "
        f"{settings['seed']}). Failed requests are left out of every score and counted as "
        "errors; answers with unreadable fragments are scored on what could be read and "
        "counted as parse failures. k = 0 answers take no examples and fill the k = 0 "
        "column of every strategy. The best cell of each task (highest mean) is in bold.",
        "",
        bl.explanation(),
        "",
    ]


def _task_section(report: Report, task: str) -> list[str]:
    cells = report.task_cells(task)
    lines = [f"## {task.capitalize()}", ""]
    lines += [f"### Micro-F1, mean ± std over seeds ({task})", ""]
    lines += [*_md_matrix(report, task, mean_std_text, ci=False), ""]
    lines += [f"### Pooled micro-F1 [{report.settings['confidence']:.0%} CI] ({task})", ""]
    lines += [*_md_matrix(report, task, pooled_text, ci=True), "", bl.LEGEND + ".", ""]
    lines += _baseline_section(report, task)
    if any(c["parity_micro_f1"] is not None for c in report.task_cells(task)):
        lines += [f"### Pooled micro-F1 as the published code scored it ({task})", ""]
        lines += [*_md_matrix(report, task, lambda c: number(c["parity_micro_f1"])), ""]
    lines += [f"### Every cell ({task})", ""]
    lines += md_table(
        [
            "model",
            "strategy",
            "k",
            "items",
            "scored",
            "seeds",
            "mean ± std",
            "pooled [CI]",
            "macro-F1",
            "parse failures",
            "errors",
            "latency (s)",
        ],
        [
            (
                c["model"],
                strategy_label(c["strategy"]),
                c["k"],
                c["n_items"],
                c["n_scored"],
                c["n_seeds"],
                mean_std_text(c),
                marked(pooled_text(c), c),
                number(c["macro_f1"]),
                c["parse_failures"],
                c["errors"],
                number(c["mean_latency_s"], ".2f"),
            )
            for c in cells
        ],
    )
    lines.append("")
    best = report.best.get(task)
    if best is None:
        lines += ["No scored items, so no best cell.", ""]
        return lines
    where = f"{best['model']} {strategy_label(best['strategy'])} k={best['k']}"
    ties = f" (tied with {', '.join(best['ties'])})" if best["ties"] else ""
    weak = best["clears_constant"] is False
    lines += [
        f"### Highest-scoring cell: {md_text(where)} {bl.MARK}"
        if weak
        else f"### Best cell: {md_text(where)}",
        "",
        f"Mean micro-F1 {number(best['mean_micro_f1'])} ± {number(best['std_micro_f1'])} over "
        f"{best['n_seeds']} seed(s), pooled {number(best['micro_f1'])}{md_text(ties)}. "
        + (
            "It does not clear the best constant answer, so no model of this task has "
            "shown that it works here. "
            if weak
            else ""
        )
        + "Per-class and per-sample-type scores pool its seeds' answers.",
        "",
        "Per class:",
        "",
    ]
    lines += md_table(
        ["label", "precision", "recall", "F1", "support"],
        [
            (c["label"], number(c["precision"]), number(c["recall"]), number(c["f1"]), c["support"])
            for c in best["per_class"]
        ],
    )
    lines += ["", "Per sample type (micro):", ""]
    lines += md_table(
        ["sample type", "items", "precision", "recall", "F1", "support"],
        [
            (
                t["sample_type"],
                t["n_items"],
                number(t["precision"]),
                number(t["recall"]),
                number(t["f1"]),
                t["support"],
            )
            for t in best["per_sample_type"]
        ],
    )
    lines.append("")
    return lines


def _baseline_section(report: Report, task: str) -> list[str]:
    found = [b for b in report.baselines if b["task"] == task]
    if not found:
        return []
    lines = [f"### Baselines ({task}, split {md_text(found[0]['split'])})", ""]
    lines += [*md_table(bl.BASELINE_HEADER, bl.baseline_rows(found)), ""]
    lines += [f"### Against the best constant ({task})", "", bl.VS_TEXT, ""]
    rows = bl.vs_constant_rows(report.task_cells(task), strategy_label)
    return [*lines, *md_table(bl.VS_HEADER, rows), ""]


def _comparison_section(report: Report) -> list[str]:
    lines = [
        "## Paired comparisons",
        "",
        "Pooled micro-F1 of A minus B on the same items (matched by sample and seed, "
        "items failed on either side left out), by a paired bootstrap; p is two-sided "
        "for no difference.",
        "",
    ]
    if not report.comparisons:
        return [*lines, "None: no pair of configurations answered the same items.", ""]

    def numbers(c: Comparison, *head: str) -> list[object]:
        return [
            c["task"],
            *head,
            c["k"],
            c["n_items"],
            number(c["a_micro_f1"]),
            number(c["b_micro_f1"]),
            f"{c['diff']:+.3f}",
            interval(c["ci_low"], c["ci_high"], "+.3f"),
            f"{c['p_value']:.4f}",
        ]

    tail = ["n", "F1 A", "F1 B", "A − B", "CI", "p"]

    def mark(c: Comparison, side: str, text: str) -> str:
        """``text``, marked when side a's or b's cell does not clear the best constant."""
        model, strategy = (
            (c["a_model"], c["a_strategy"]) if side == "a" else (c["b_model"], c["b_strategy"])
        )
        cells = report.task_cells(c["task"])
        found = [
            x
            for x in cells
            if (x["model"], x["k"]) == (model, c["k"])
            and strategy in (x["strategy"], *x["sources"])
        ]
        return marked(text, found[0] if found else None)

    models = [c for c in report.comparisons if c["kind"] == "models"]
    strategies = [c for c in report.comparisons if c["kind"] == "strategies"]
    if models:
        lines += ["### Models", ""]
        lines += md_table(
            ["task", "A", "B", "strategy", "k", *tail],
            [
                numbers(
                    c,
                    mark(c, "a", c["a_model"]),
                    mark(c, "b", c["b_model"]),
                    strategy_label(c["a_strategy"]),
                )
                for c in models
            ],
        )
        lines.append("")
    if strategies:
        lines += ["### SSFS vs RFS", ""]
        lines += md_table(
            ["task", "model", "A", "B", "k", *tail],
            [
                numbers(
                    c,
                    c["a_model"],
                    mark(c, "a", c["a_strategy"].upper()),
                    mark(c, "b", c["b_strategy"].upper()),
                )
                for c in strategies
            ],
        )
        lines.append("")
    return lines


def _closed_loop_section(report: Report) -> list[str]:
    if not report.closed_loop:
        return []
    table = render_table({arm["arm"]: arm for arm in report.closed_loop})
    return [
        "## Closed loop",
        "",
        "Each arm's letters applied to the faulted simulated sample and reconstructed; "
        "*fixed* when they closed at least the simulator's share of the NRMSE gap to the "
        "clean reconstruction. Fix rate with a "
        f"{report.settings['confidence']:.0%} bootstrap interval; Δ is the paired "
        "fix-rate difference on the same samples, with its interval and two-sided p. "
        "Failed requests are errors, left out of the rates. The samples' records "
        "(samples.jsonl) had SHA-256 "
        + ", ".join(report.settings.get("closed_loop_samples_sha256", []))
        + ".",
        "",
        *table.splitlines(),
        "",
    ]


def _failures_section(report: Report) -> list[str]:
    lines = [
        "## Parse failures and errors",
        "",
        "Items as sent (k = 0 answers counted once).",
        "",
    ]
    if not report.totals:
        return [*lines, "No items.", ""]
    lines += md_table(
        ["task", "model", "items", "parse failures", "errors"],
        [
            (t["task"], t["model"], t["n_items"], t["parse_failures"], t["errors"])
            for t in report.totals
        ],
    )
    lines.append("")
    messages = [
        (t["task"], t["model"], m["count"], m["message"])
        for t in report.totals
        for m in t["error_messages"]
    ]
    if messages:
        lines += ["Errors:", ""]
        lines += md_table(["task", "model", "count", "message"], messages)
        lines.append("")
    return lines


def render_markdown(report: Report) -> str:
    """The report as Markdown (what ``report.md`` holds)."""
    lines = _run_header(report) + _explanation(report)
    for task in report.tasks:
        lines += _task_section(report, task)
    lines += _closed_loop_section(report)
    lines += _comparison_section(report) + _failures_section(report)
    lines += ["## Missing", ""]
    lines += [f"- {md_text(note)}" for note in report.missing] or ["Nothing."]
    lines.append("")
    return "\n".join(lines)


__all__ = ["baseline_rows", "is_best", "marked", "mean_std_text", "pooled_text", "render_markdown"]
