"""`ptychoagent adapters`: the adapter registry, and adapters in the running engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ptychoagent.cli.engine import STATE_DIR

app = typer.Typer(
    help="List, register, load, unload and score LoRA adapters.", invoke_without_command=True
)
REGISTRY = Path("artifacts/registry.json")

RegistryOption = typer.Option(REGISTRY, "--registry", help="The adapter registry file.")
UrlOption = typer.Option(None, "--url", help="Engine base URL (default: the one `engine up` ran).")


def _fail(error: Exception, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)


def _engine_url(url: str | None) -> str | None:
    from ptychoagent.engine import read_state

    if url:
        return url.rstrip("/")
    state = read_state(STATE_DIR)
    return None if state is None else str(state["base_url"])


def _served(url: str | None) -> set[str] | None:
    from ptychoagent.engine import healthy, served_models

    if url is None or not healthy(url):
        return None
    return set(served_models(url))


@app.callback()
def listing(
    ctx: typer.Context,
    registry: Path = RegistryOption,
    url: str = UrlOption,
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """The registered adapters (and whether the running engine serves each)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from ptychoagent.adapters import Registry

    entries = Registry(registry).entries()
    served = _served(_engine_url(url))
    if json_output:
        rows = [
            {**e.model_dump(mode="json"), "served": None if served is None else e.name in served}
            for e in entries
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not entries:
        typer.echo(f"no adapters registered in {registry}")
        return
    table = Table(title=f"adapters ({registry})")
    for column in ("name", "task", "base", "rank", "data", "metrics", "served", "path"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.name,
            e.task.value,
            e.base,
            str(e.rank),
            (e.data_hash or "-")[:12],
            _metrics_text(e.metrics),
            "?" if served is None else ("yes" if e.name in served else "no"),
            e.path,
        )
    Console().print(table)


def _metrics_text(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, dict) and "micro_f1" in value:
            low, high = value.get("micro_f1_ci", (None, None))
            parts.append(f"{key}: F1 {value['micro_f1']:.3f} [{low:.3f}, {high:.3f}]")
        elif isinstance(value, float):
            parts.append(f"{key}: {value:.4g}")
    return "\n".join(parts) or "-"


@app.command()
def add(
    path: Path = typer.Argument(..., help="An adapter directory (peft, safetensors)."),
    name: str = typer.Option(..., help="Its name in the registry and in vLLM."),
    task: str = typer.Option(None, help="detection or recommendation (read from training.json)."),
    replace: bool = typer.Option(False, help="Replace an entry of the same name."),
    registry: Path = RegistryOption,
) -> None:
    """Register an adapter directory."""
    from pydantic import ValidationError

    from ptychoagent.adapters import AdapterError, Registry

    try:
        entry = Registry(registry).add(name, path, task=task, replace=replace)
    except (AdapterError, ValidationError, ValueError) as error:
        raise _fail(error, 2) from None
    typer.echo(f"registered {entry.name} ({entry.task.value}, rank {entry.rank}) at {entry.path}")


@app.command()
def remove(name: str, registry: Path = RegistryOption, url: str = UrlOption) -> None:
    """Unregister an adapter (and unload it from the running engine if it serves it)."""
    from ptychoagent import adapters

    try:
        entry = adapters.Registry(registry).remove(name)
        base_url = _engine_url(url)
        served = _served(base_url)
        if base_url is not None and served is not None and name in served:
            adapters.unload(base_url, name)
    except adapters.AdapterError as error:
        raise _fail(error) from None
    typer.echo(f"removed {entry.name}")


@app.command()
def load(name: str, registry: Path = RegistryOption, url: str = UrlOption) -> None:
    """Load a registered adapter into the running engine."""
    from ptychoagent import adapters

    base_url = _engine_url(url)
    if base_url is None:
        raise _fail(RuntimeError("no engine is running (ptychoagent engine up)"))
    try:
        book = adapters.Registry(registry)
        adapters.load(base_url, name, book.resolve(book.get(name)))
    except adapters.AdapterError as error:
        raise _fail(error) from None
    typer.echo(f"{name} is served at {base_url}")


@app.command()
def unload(name: str, url: str = UrlOption) -> None:
    """Unload an adapter from the running engine."""
    from ptychoagent import adapters

    base_url = _engine_url(url)
    if base_url is None:
        raise _fail(RuntimeError("no engine is running (ptychoagent engine up)"))
    try:
        adapters.unload(base_url, name)
    except adapters.AdapterError as error:
        raise _fail(error) from None
    typer.echo(f"{name} unloaded from {base_url}")


@app.command()
def evaluate(
    name: str = typer.Argument(..., help="A served model or adapter name (e.g. base)."),
    dataset: Path = typer.Option(Path("data/ptychobench-sim"), help="A release."),
    split: str = typer.Option("test"),
    k: int = typer.Option(0, help="Examples per prompt, chosen from the training split."),
    strategy: str = typer.Option("ssfs", help="ssfs or rfs."),
    constrained: bool = typer.Option(True, help="Hold answers to the label format."),
    concurrency: int = typer.Option(1),
    registry: Path = RegistryOption,
    url: str = UrlOption,
) -> None:
    """Score a served adapter on a split (micro-F1, 95 % CI); store it in the registry."""
    from ptychoagent.adapters import AdapterError, Registry
    from ptychobench.selection import Strategy
    from training.evaluate import EvaluationError, Settings
    from training.evaluate import evaluate as run

    base_url = _engine_url(url)
    if base_url is None:
        raise _fail(RuntimeError("no engine is running (ptychoagent engine up)"))
    settings = Settings(
        split=split,
        k=k,
        strategy=Strategy(strategy),
        constrained=constrained,
        concurrency=concurrency,
    )
    try:
        summary = run(base_url, name, str(dataset), settings).summary()
    except EvaluationError as error:
        raise _fail(error) from None
    typer.echo(json.dumps(summary, indent=2))
    book = Registry(registry)
    if any(e.name == name for e in book.entries()):
        key = f"{split}/k{k}/{strategy}" + ("" if constrained else "/free")
        try:
            book.set_metrics(name, {key: summary})
        except AdapterError as error:
            raise _fail(error) from None
