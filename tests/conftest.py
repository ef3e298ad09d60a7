"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable

import pytest

_OUR_ENV_PREFIXES = ("PTYCHO", "GATEWAY_", "DIAGNOSIS_", "AGENT_", "RETRIEVER_")


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
