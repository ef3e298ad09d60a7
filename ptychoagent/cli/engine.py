"""`ptychoagent engine up|down|status`: the vLLM server the model services call."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Start, stop and look at the vLLM engine.", no_args_is_help=True)

CONFIG_DIR = Path("deploy/vllm")
STATE_DIR = Path("runs/engine")


def _config_path(config: str) -> Path:
    path = Path(config)
    return path if path.suffix in (".yaml", ".yml") else CONFIG_DIR / f"{config}.yaml"


@app.command()
def up(
    config: str = typer.Option("cpu", help="A name in deploy/vllm/ or a YAML path."),
    state_dir: Path = typer.Option(STATE_DIR, help="Where the engine's state and log go."),
    models_dir: Path = typer.Option(
        Path("models"), help="Where base models and the zero adapter live."
    ),
) -> None:
    """Start vLLM (creating its environment and the base model on first use)."""
    from ptychoagent.engine import EngineError, load_config
    from ptychoagent.engine import up as start
    from training.adapters import zero_adapter
    from training.base_models import BaseModelError, ensure_base_model

    try:
        engine = load_config(_config_path(config))
        zero = None
        if engine.base_via_zero_adapter:
            zero = str(zero_adapter(ensure_base_model(engine.model), models_dir))
        state = start(engine, state_dir, zero)
    except (EngineError, BaseModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"engine '{engine.name}' at {state['base_url']} (pid {state['pid']}); log: {state['log']}"
    )


@app.command()
def down(state_dir: Path = typer.Option(STATE_DIR)) -> None:
    """Stop the engine that `up` started (nothing else)."""
    from ptychoagent.engine import down as stop

    typer.echo("stopped" if stop(state_dir) else "no engine was started here")


@app.command()
def status(
    state_dir: Path = typer.Option(STATE_DIR),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Whether the engine runs, its health and the models it serves."""
    from ptychoagent.engine import status as look

    report = look(state_dir)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
    elif not report["running"]:
        typer.echo("no engine is running")
    else:
        models = ", ".join(report.get("models", [])) or "-"
        typer.echo(
            f"engine '{report['config']}' at {report['base_url']} pid {report['pid']}: "
            f"{'healthy' if report['healthy'] else 'NOT healthy'}; models: {models}; "
            f"log: {report['log']}"
        )
