"""`ptychoagent score`: micro/macro F1 with bootstrap CIs for a results file.

Reads our JSONL results or a published PtychoBench result JSON (see
`ptychobench.results`) and scores every run twice: our scoring (fixed vocabulary, robust
parsing) and the published parity scoring. numpy and ptychobench are imported inside the
command so `ptychoagent --help` stays fast.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from ptychobench.bootstrap import BootstrapResult
    from ptychobench.results import RunEvaluation


class TaskName(enum.StrEnum):
    """The `--task` choices; the values of `ptychobench.labels.Task` (kept here so the
    module does not import ptychobench at import time)."""

    DETECTION = "detection"
    RECOMMENDATION = "recommendation"


def score(
    results: Path = typer.Argument(..., help="Our JSONL results or a published result JSON."),
    task: TaskName | None = typer.Option(
        None,
        "--task",
        help="Only this task's runs (JSONL); the task of a published file (else inferred).",
    ),
    n_resamples: int = typer.Option(10_000, "--n-resamples", min=1, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Score every run in a results file: micro-F1 with a 95 % bootstrap CI, macro-F1 and
    parse failures under our scoring, and micro-F1 under the published (parity) scoring."""
    from ptychobench.results import evaluate_run, load_results

    try:
        if not results.is_file():
            raise ValueError(f"{results}: no such file")
        runs = load_results(results, task.value if task is not None else None)
        evaluations = [evaluate_run(run, n_resamples=n_resamples, seed=seed) for run in runs]
    except (OSError, ValueError) as exc:
        message = " ".join(str(exc).split())
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    if json_output:
        payload = {
            "results": str(results),
            "n_resamples": n_resamples,
            "seed": seed,
            "runs": [evaluation.to_dict() for evaluation in evaluations],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_tables(evaluations)


def _ci(result: BootstrapResult) -> str:
    from ptychobench.report.tables import interval

    return interval(result.ci_low, result.ci_high)


def _print_tables(evaluations: list[RunEvaluation]) -> None:
    from rich.console import Console

    groups: dict[tuple[str, str], list[RunEvaluation]] = {}
    for evaluation in evaluations:
        run = evaluation.run
        groups.setdefault((run.task.value, run.system), []).append(evaluation)
    console = Console()
    for (task, system), members in groups.items():
        console.print(_table(f"{task} · {system}", members))


def _table(title: str, evaluations: list[RunEvaluation]) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0))
    table.add_column("strategy", no_wrap=True)
    headers = ("k", "n", "micro-F1", "95 % CI", "macro-F1", "parse\nfailures")
    for name in (*headers, "parity\nmicro-F1", "parity\n95 % CI"):
        table.add_column(name, justify="right", no_wrap=True)
    for evaluation in evaluations:
        run, ours, parity = evaluation.run, evaluation.ours_micro_f1, evaluation.parity_micro_f1
        table.add_row(
            run.strategy.upper(),
            str(run.k),
            str(run.n_items),
            f"{ours.point:.3f}",
            _ci(ours),
            f"{evaluation.ours.macro.f1:.3f}",
            str(evaluation.parse_failures),
            f"{parity.point:.3f}",
            _ci(parity),
        )
    return table
