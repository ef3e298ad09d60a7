"""The `ptychoagent` command line.

Each command group lives in its own module and is mounted here. Command modules import
heavy or slow libraries inside the command functions, so `ptychoagent --help` is fast.
"""

from __future__ import annotations

import typer

from ptychoagent.cli import (
    adapters,
    analyze,
    bench,
    data,
    engine,
    keys,
    models,
    quickstart,
    refine,
    retriever,
    run,
    score,
    serve,
    sim,
    train,
)

app = typer.Typer(
    name="ptychoagent",
    help="Artifact diagnosis and parameter recommendation for X-ray ptychography.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(engine.app, name="engine")
app.add_typer(adapters.app, name="adapters")
app.add_typer(train.app, name="train")
app.add_typer(retriever.app, name="retriever")
app.add_typer(keys.app, name="keys")
app.add_typer(sim.app, name="sim")
app.command("score")(score.score)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve.serve)
app.command("analyze")(analyze.analyze)
app.command("refine")(refine.refine)
app.command("bench")(bench.bench)
app.command("run")(run.run)


def main() -> None:
    """Console-script entry point."""
    app()
