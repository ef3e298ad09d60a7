"""`ptychoagent serve SERVICE`: run the gateway or one of the model services with uvicorn."""

from __future__ import annotations

import typer

from ptychoagent.stack import FACTORIES, PORTS


def serve(
    service: str = typer.Argument(..., help=f"One of: {', '.join(FACTORIES)}."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int | None = typer.Option(None, help=f"Port to listen on (default: {PORTS})."),
    workers: int = typer.Option(1, help="Worker processes (services are stateless)."),
) -> None:
    """Run a service (configured by its environment: AGENT_BACKEND__BASE_URL, …)."""
    if service not in FACTORIES:
        typer.echo(f"error: unknown service {service!r}; one of: {', '.join(FACTORIES)}", err=True)
        raise typer.Exit(2)
    if service == "reconstructor" and workers > 1:
        typer.echo(
            "error: the reconstructor runs as one process (its job pool is "
            "RECONSTRUCTOR_WORKERS); --workers must be 1",
            err=True,
        )
        raise typer.Exit(2)
    import uvicorn

    port = port if port is not None else PORTS[service]
    uvicorn.run(FACTORIES[service], factory=True, host=host, port=port, workers=workers)
