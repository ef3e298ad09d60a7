"""`ptychoagent bench` and `ptychoagent run`: a configuration that makes no run is refused
before anything starts, with the field at fault named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("k: [0, 99]", "k values must be between 0 and 16"),
        ("strategies: []", "strategies: Value error, needs at least one value"),
        ("tasks: [detection]\nmodels: {detection: []}", "no models for the detection task"),
        ("dataset: /no/such/dir", "cannot read the dataset"),
        ("[unclosed", "is not valid YAML"),
    ],
)
def test_bench_refuses_a_configuration_that_makes_no_run(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    result = CliRunner().invoke(
        app,
        [
            "bench",
            str(path),
            "--gateway",
            "http://127.0.0.1:9",
            "--database-url",
            f"sqlite:///{tmp_path / 'runs.db'}",
        ],
    )
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_run_refuses_a_missing_configuration(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "no benchmark configuration" in result.output
