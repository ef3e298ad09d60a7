"""The gateway as an attacker or a careless client meets it, over real HTTP (uvicorn in
a thread) where the transport matters: kept-alive connections after errors, bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from gateway.service import GatewayService

Apps = Any  # conftest.Apps: the gateway in front of the real services


def test_a_kept_alive_connection_survives_a_500_and_a_database_503(
    apps: Apps,
    serve: Callable[..., Any],
    keep_alive: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = iter(
        [OperationalError("SELECT", {}, ConnectionRefusedError("refused")), RuntimeError("bug")]
    )

    async def failing(self: GatewayService, *args: Any, **kwargs: Any) -> Any:
        raise next(failures)

    monkeypatch.setattr(GatewayService, "predictions", failing)
    with serve(apps.gateway) as url:
        auth = {"Authorization": f"Bearer {apps.keys()['predict']}"}
        answers = keep_alive(
            url,
            [
                ("GET", "/v1/predictions", None, auth),
                ("GET", "/v1/predictions", None, auth),
                ("GET", "/healthz", None),
            ],
        )
    assert [status for status, _ in answers] == [503, 500, 200]
    assert answers[0][1]["type"].endswith("/database-unavailable")
    assert answers[1][1]["type"].endswith("/internal")
