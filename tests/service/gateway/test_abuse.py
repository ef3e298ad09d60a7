"""The gateway as an attacker or a careless client meets it, over real HTTP (uvicorn in
a thread) where the transport matters: kept-alive connections after errors, bodies."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

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


def _partial_request(url: str, path: str, headers: dict[str, str], sent: bytes) -> tuple[int, Any]:
    """Send a request's head and only ``sent`` of the body its head promises, then read
    the answer: the server must answer without waiting for (or buffering) the rest."""
    netloc = urlsplit(url).netloc
    host, port = netloc.split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        # the server may answer and stop reading before all is sent
        with contextlib.suppress(OSError):
            sock.sendall(head.encode() + sent)
        with contextlib.closing(http.client.HTTPResponse(sock)) as response:
            response.begin()
            assert response.getheader("content-type") == "application/problem+json"
            return response.status, json.loads(response.read())


def _chunked(size: int) -> bytes:
    """``size`` bytes as 64 kB chunks, with no last chunk: the body never ends."""
    step = 65_536
    return b"".join(
        b"%x\r\n" % min(step, size - at) + b"{" * min(step, size - at) + b"\r\n"
        for at in range(0, size, step)
    )


IMAGE_BODY = 2_000_000 * 4 // 3 + 1_000_000  # the test gateway's max_image_bytes as base64
JSON = {"Content-Type": "application/json"}
HUGE = {**JSON, "Content-Length": "200000000"}
CHUNKED = {**JSON, "Transfer-Encoding": "chunked"}
FORM = {**CHUNKED, "Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("path", "scope", "headers", "sent", "status"),
    [
        # no key or a wrong one: refused before a byte of the body is read
        ("/v1/recommend", None, HUGE, b"{" * 1024, 401),
        ("/v1/feedback/abc123", None, HUGE, b"{" * 1024, 401),
        ("/v1/benchmarks", "wrong", HUGE, b"{" * 1024, 401),
        ("/v1/diagnose", None, CHUNKED, _chunked(65_536), 401),
        ("/v1/recommend", "wrong", CHUNKED, _chunked(65_536), 401),
        # a good key: a declared length over the cap is refused at once ...
        ("/v1/recommend", "predict", HUGE, b"{" * 1024, 413),
        ("/v1/diagnose", "predict", HUGE, b"{" * 1024, 413),
        # ... and a chunked body is cut off where it passes the cap
        ("/v1/recommend", "predict", CHUNKED, _chunked(1_000_001), 413),
        ("/v1/feedback/abc123", "feedback", CHUNKED, _chunked(1_000_001), 413),
        ("/v1/diagnose", "predict", CHUNKED, _chunked(IMAGE_BODY + 1), 413),
        ("/ui/login", None, FORM, _chunked(1_000_001), 413),
    ],
)
def test_bodies_are_authenticated_then_capped_while_they_stream(
    apps: Apps,
    serve: Callable[..., Any],
    path: str,
    scope: str | None,
    headers: dict[str, str],
    sent: bytes,
    status: int,
) -> None:
    with serve(apps.gateway) as url:
        keys = {**apps.keys(), "wrong": "pk_0123456789ab_" + "x" * 43}
        auth = {"Authorization": f"Bearer {keys[scope]}"} if scope else {}
        answered, problem = _partial_request(url, path, {**headers, **auth}, sent)
    assert answered == status, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/unauthorized" if status == 401 else "/payload-too-large")
