"""`ptychoagent keys`: make, list and revoke gateway API keys in a SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.keys import KeyStore
from ptychoagent.cli import app
from services.common.database import make_engine
from services.common.errors import Unauthorized

runner = CliRunner()


def invoke(*args: str, **env: str) -> Any:
    return runner.invoke(app, ["keys", *args], env={"COLUMNS": "200", **env})


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs' / 'gateway.db'}"


def _authenticate(url: str, token: str) -> str:
    engine = make_engine(url)
    try:
        return KeyStore(engine).authenticate(token).name
    finally:
        engine.dispose()


def test_create_prints_a_token_once_that_authenticates(url: str) -> None:
    result = invoke(
        "create", "beamline", "--scope", "predict", "-s", "feedback", "--database-url", url
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("pk_")
    assert "\n" not in token  # stdout is the token alone: TOKEN=$(ptychoagent keys create …)
    assert "not stored" in result.stderr
    assert "predict, feedback" in result.stderr
    assert _authenticate(url, token) == "beamline"


def test_list_shows_names_and_never_a_secret(url: str) -> None:
    token = invoke("create", "beamline", "-s", "predict", "--database-url", url).stdout.strip()
    invoke("create", "ops", "-s", "admin", "--database-url", url)
    _authenticate(url, token)
    listed = invoke("list", "--database-url", url)
    assert listed.exit_code == 0, listed.output
    key_id, secret = token.split("_", 2)[1:]
    assert "beamline" in listed.output
    assert "ops" in listed.output
    assert key_id in listed.output
    assert secret not in listed.output
    assert "UTC" in listed.output  # beamline's last use
    assert listed.output.count("active") == 2


def test_revoke_by_name_or_id_makes_the_token_fail(url: str) -> None:
    token = invoke("create", "old", "-s", "predict", "--database-url", url).stdout.strip()
    revoked = invoke("revoke", "old", "--database-url", url)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked API key 'old'" in revoked.output
    with pytest.raises(Unauthorized, match="was revoked"):
        _authenticate(url, token)
    again = invoke("revoke", token.split("_")[1], "--database-url", url)
    assert again.exit_code == 0
    assert "already revoked" in again.output
    assert "revoked" in invoke("list", "--database-url", url).output
    unknown = invoke("revoke", "nobody", "--database-url", url)
    assert unknown.exit_code == 1
    assert "no API key named 'nobody'" in unknown.stderr


def test_the_database_comes_from_the_environment(url: str) -> None:
    token = invoke("create", "ci", "-s", "predict", GATEWAY_DATABASE_URL=url).stdout.strip()
    assert _authenticate(url, token) == "ci"
    assert "ci" in invoke("list", GATEWAY_DATABASE_URL=url).output


def test_bad_input_is_refused_before_the_database_is_touched(url: str, tmp_path: Path) -> None:
    unknown = invoke("create", "x", "-s", "predict", "-s", "root", "--database-url", url)
    assert unknown.exit_code == 1
    assert "unknown scope 'root'; allowed: predict, feedback, admin" in unknown.stderr
    assert not (tmp_path / "runs").exists()
    invoke("create", "x", "-s", "predict", "--database-url", url)
    taken = invoke("create", "x", "-s", "admin", "--database-url", url)
    assert taken.exit_code == 1
    assert "exists already" in taken.stderr
    assert invoke("create", "y", "--database-url", url).exit_code == 2  # --scope is required


def test_an_unmigrated_database_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = invoke("list", "--database-url", f"sqlite:///{tmp_path / 'other.db'}")
    assert result.exit_code == 1
    assert "keys create' migrates it" in result.stderr


def test_an_empty_store_says_so(url: str) -> None:
    engine = make_engine(url)
    KeyStore(engine).create_schema()
    engine.dispose()
    listed = invoke("list", "--database-url", url)
    assert listed.exit_code == 0
    assert "no API keys in sqlite:///" in listed.output
