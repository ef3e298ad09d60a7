"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

_OUR_ENV_PREFIXES = ("PTYCHO", "GATEWAY_", "DIAGNOSIS_", "AGENT_", "RETRIEVER_", "RECONSTRUCTOR_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with none of the project's settings in the environment."""
    for name in list(os.environ):
        if name.startswith(_OUR_ENV_PREFIXES):
            monkeypatch.delenv(name)


def tiny_png(seed: int = 0, size: int = 4) -> bytes:
    """A valid greyscale PNG whose pixels depend on ``seed``."""
    rows = b"".join(
        b"\x00" + bytes((seed * 31 + x * 7 + y * 13) % 256 for x in range(size))
        for y in range(size)
    )

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def make_png() -> Callable[..., bytes]:
    """``make_png(seed=0, size=4)``: a valid greyscale PNG whose pixels depend on seed."""
    return tiny_png


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``pytest.mark.anyio``) run on asyncio, as the services do."""
    return "asyncio"


POSTGRES_ADMIN_URL = os.environ.get(
    "PTYCHOAGENT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session (dropped afterwards), on
    the server at ``PTYCHOAGENT_TEST_POSTGRES`` (default: the machine's 127.0.0.1:5432)."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"ptychoagent_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        pytest.skip(f"no PostgreSQL server at {POSTGRES_ADMIN_URL}: {error}")
    yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread (a real HTTP server); yields its URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server on port {port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve() -> Callable[..., Any]:
    """``with serve(app) as url:`` runs an ASGI app as a real HTTP server."""
    return serve_in_thread


@contextlib.asynccontextmanager
async def asgi_client(
    app: Any, name: str = "app", *, lifespan: bool = True, **options: Any
) -> AsyncIterator[Any]:
    """An httpx client calling ``app`` in process, inside the app's lifespan (unless
    ``lifespan`` is false): what it opens at startup (its upstream clients' connection
    pools) is closed on the way out, as a real server would, instead of being left to
    the garbage collector."""
    import httpx

    async with contextlib.AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{name}", **options
            )
        )


@pytest.fixture(scope="session")
def asgi() -> Callable[..., Any]:
    """``async with asgi(app, name) as client:`` calls an ASGI app in process within its
    lifespan (startup and shutdown run)."""
    return asgi_client


Exchange = (
    tuple[str, str, dict[str, Any] | None] | tuple[str, str, dict[str, Any] | None, dict[str, str]]
)


def keep_alive_exchange(url: str, requests: list[Exchange]) -> list[tuple[int, Any]]:
    """Each ``(method, path, json_body[, headers])`` in turn on one kept-alive connection
    to ``url``: the statuses and JSON bodies; fails if the server closed the connection
    in between (the client would have had to open another)."""
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
    answers: list[tuple[int, Any]] = []
    opened = None
    try:
        for method, path, body, *more in requests:
            headers = dict(more[0]) if more else {}
            content = None if body is None else json.dumps(body)
            if body is not None:
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=content, headers=headers)
            assert opened in (None, connection.sock), f"{method} {path}: a new connection"
            opened = connection.sock
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read() or b"null")))
    finally:
        connection.close()
    return answers


@pytest.fixture(scope="session")
def keep_alive() -> Callable[..., list[tuple[int, Any]]]:
    """``keep_alive(url, [(method, path, json_body[, headers]), ...])``: statuses and
    bodies of requests sent one after another on one kept-alive connection."""
    return keep_alive_exchange


@pytest.fixture
def free_tcp_port() -> Callable[[], int]:
    """``free_tcp_port()``: a port nothing listens on now."""
    return free_port


@pytest.fixture
def empty_postgres(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied first (its public schema recreated), so
    each test migrates from nothing whatever the previous test left."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return postgres_url


FUZZ_COUNTS = pytest.StashKey[Counter[tuple[str, int]]]()


@pytest.fixture(scope="session")
def fuzz_counts(pytestconfig: pytest.Config) -> Counter[tuple[str, int]]:
    """Cases sent by the fuzzing, by app and status; printed at the end of the run."""
    return pytestconfig.stash.setdefault(FUZZ_COUNTS, Counter())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counts = config.stash.get(FUZZ_COUNTS, Counter())
    if not counts:
        return
    terminalreporter.section("fuzz cases")
    seed = config.getoption("fuzz_seed")
    terminalreporter.write_line(f"total: {counts.total()} (seed: {seed or 'derandomized'})")
    for app in sorted({app for app, _ in counts}):
        mine = {status: n for (name, status), n in sorted(counts.items()) if name == app}
        statuses = ", ".join(f"{status}: {n}" for status, n in mine.items())
        terminalreporter.write_line(f"{app}: {sum(mine.values())} ({statuses})")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzz", "the OpenAPI fuzzing (tests/service/test_fuzz.py)")
    group.addoption(
        "--fuzz-examples",
        type=int,
        default=100,
        help="generated cases per operation, valid and invalid each (default: %(default)s)",
    )
    group.addoption(
        "--fuzz-seed",
        type=int,
        default=None,
        help="the seed of the generated cases (default: none, the same cases every run)",
    )
