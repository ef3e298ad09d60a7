"""`ptychoagent analyze IMAGE`: send one reconstruction through the gateway (diagnose,
then recommend) and print what to change."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _parameters(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--param")
        out[name.strip()] = setting.strip()
    return out


def analyze(
    image: Path = typer.Argument(..., exists=True, dir_okay=False, help="The reconstruction."),
    sample_type: str = typer.Option(..., help="Sample type, e.g. 'Integrated circuit'."),
    instrument: str = typer.Option(..., help="Instrument, e.g. 'Velociprobe'."),
    description: str = typer.Option("", help="What the reconstruction shows, in words."),
    param: list[str] = typer.Option(
        [], "--param", help="A current reconstruction parameter, NAME=VALUE (repeatable)."
    ),
    k: int = typer.Option(0, help="Few-shot examples for both steps."),
    strategy: str = typer.Option("ssfs", help="Example selection: ssfs, rfs or semantic."),
    gateway: str = typer.Option(
        "http://127.0.0.1:8100", envvar="PTYCHO_GATEWAY_URL", help="The gateway's URL."
    ),
    api_key: str = typer.Option(
        None, envvar="PTYCHO_API_KEY", help="An API key with the predict scope."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole answer as JSON."),
) -> None:
    """Diagnose IMAGE, then recommend parameter changes from the artifacts found."""
    from ptychoagent.client import Client, GatewayError
    from ptychowire.base import Strategy

    if strategy not in set(Strategy):
        raise typer.BadParameter(f"one of {', '.join(Strategy)}", param_hint="--strategy")
    step = {"k": k, "strategy": strategy}
    try:
        with Client(gateway, api_key) as client:
            result = client.analyze(
                image,
                sample_type=sample_type,
                instrument=instrument,
                description=description,
                parameters=_parameters(param),
                diagnosis=step,
                recommendation=step,
            )
    except GatewayError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    diagnosis, advice = result.diagnosis, result.recommendation
    typer.echo(f"artifacts ({diagnosis.backend} {diagnosis.adapter}, k={diagnosis.k}):")
    for artifact in diagnosis.artifacts:
        typer.echo(f"  - {artifact.text}")
    typer.echo(f"recommendations ({advice.adapter}, k={advice.k}):")
    for item in advice.recommendations:
        typer.echo(f"  {item.letter}. {item.text}")
        for change in item.changes:
            typer.echo(f"       {change.target}.{change.path} {change.op} {change.value!r}")
    typer.echo(
        f"predictions: {diagnosis.prediction_id} (diagnosis), {advice.prediction_id} "
        f"(recommendation); {result.latency_s:.1f} s"
    )
