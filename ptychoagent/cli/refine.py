"""`ptychoagent refine EXPERIMENT.h5`: run the closed loop on an experiment through the
gateway (reconstruct, diagnose, recommend, apply, reconstruct, judge), with a progress
bar per round, and write each round's before/after phase images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def refine(
    experiment: Path = typer.Argument(..., help="The experiment (HDF5, docs/reconstructor.md)."),
    sample_type: str = typer.Option(..., help="Sample type, e.g. 'Integrated circuit'."),
    instrument: str = typer.Option(..., help="Instrument, e.g. 'Velociprobe'."),
    rounds: int = typer.Option(3, min=1, max=20, help="At most this many rounds."),
    adapter: str = typer.Option(None, help="The agent's adapter (default: the service's)."),
    k: int = typer.Option(0, help="Few-shot examples for the agent."),
    strategy: str = typer.Option("ssfs", help="Example selection: ssfs, rfs or semantic."),
    backend: str = typer.Option(None, help="The diagnosis backend: classifier or vlm."),
    out: Path = typer.Option(None, help="Write round N's before/after images and the record here."),
    gateway: str = typer.Option(
        "http://127.0.0.1:8100", envvar="PTYCHO_GATEWAY_URL", help="The gateway's URL."
    ),
    api_key: str = typer.Option(
        None, envvar="PTYCHO_API_KEY", help="An API key with the predict and read scopes."
    ),
    poll_s: float = typer.Option(1.0, help="Seconds between progress polls."),
) -> None:
    """Refine EXPERIMENT's reconstruction: each round is kept only if it helped."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ptychoagent.client import Client, GatewayError, RefineJobResponse

    if not experiment.is_file():  # one line, before anything is sent
        typer.echo(f"error: {experiment}: no such experiment file", err=True)
        raise typer.Exit(1)
    recommendation = {"k": k, "strategy": strategy, "adapter": adapter}
    diagnosis = {"backend": backend} if backend else {}
    bars: dict[int, Any] = {}
    try:
        with (
            Client(gateway, api_key) as client,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[stage]}"),
                TimeElapsedColumn(),
            ) as progress,
        ):
            job = client.refine(
                experiment,
                sample_type=sample_type,
                instrument=instrument,
                max_rounds=rounds,
                recommendation={k: v for k, v in recommendation.items() if v is not None},
                diagnosis=diagnosis,
            )

            def show(now: RefineJobResponse) -> None:
                number = int(now.progress.get("round", 0) or 0)
                if number and number not in bars:
                    bars[number] = progress.add_task(f"round {number}", total=1, stage="")
                for done in now.rounds:
                    bar = bars.get(done.number)
                    if bar is not None:
                        progress.update(bar, completed=1, total=1, stage=done.outcome)
                if number in bars and len(now.rounds) < number:
                    total = now.progress.get("epochs_total") or 1
                    progress.update(
                        bars[number],
                        completed=now.progress.get("epochs_done", 0),
                        total=total,
                        stage=str(now.progress.get("stage", "")),
                    )

            job = client.wait_refine(job.id, poll_s=poll_s, on_progress=show)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                for item in job.rounds:
                    for which in ("before", "after"):
                        sha = getattr(item, f"image_{which}_sha256")
                        if sha is not None:
                            image = client.refine_image(job.id, item.number, which)
                            (out / f"round{item.number}-{which}.png").write_bytes(image)
                (out / "refine.json").write_text(json.dumps(job.model_dump(mode="json"), indent=2))
    except (GatewayError, ValueError, OSError) as error:  # ValueError: an unreadable file
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"job {job.id}: {job.state}, {job.outcome or job.error}")
    for item in job.rounds:
        verdict = item.verdict or {}
        loss = verdict.get("loss_change")
        typer.echo(
            f"  round {item.number}: {item.outcome}; letters {', '.join(item.letters) or '-'} "
            f"(applied {', '.join(item.applied) or 'none'}); artifacts "
            f"{item.artifacts_before} -> {item.artifacts_after}; loss "
            + ("n/a" if loss is None else f"{loss:+.1%}")
        )
    if job.state != "done":
        raise typer.Exit(1)
