"""Request bodies before the app reads them: who may send one, and how much.

FastAPI reads and parses a route's body before it resolves the route's dependencies, so
an API-key dependency runs after an unauthenticated body has been read whole.
:class:`BodyGuard` stands in front of the app: a request that carries a body
(``Content-Length`` above 0, or ``Transfer-Encoding``) must first pass ``admit`` (the API
key, from the headers alone) and declare no more than its path's cap; then its bytes are
counted as they stream in, so a chunked body, which declares no length, is cut off at
the cap too. Nothing past the cap is ever held. Refusals are problem+json (401, 413).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import PayloadTooLarge, ServiceError

Admit = Callable[[Headers, str], Awaitable[None]]
"""``admit(headers, path)`` raises a ``ServiceError`` (``Unauthorized``) to refuse a
body before it is read."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the cap: an HTTPException, so
    that FastAPI's body parsing passes it on as it is (it turns others into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body has more than {limit:,} bytes (the limit)")


class BodyGuard:
    """Pure ASGI middleware: admit, then cap, every request body (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        limits: Mapping[str, int],
        admit: Admit | None,
        refuse: Callable[[ServiceError], ASGIApp],
    ) -> None:
        """``limit`` caps every body but those of the paths in ``limits``; ``refuse``
        makes the answer to a refusal."""
        self.app = app
        self.limit = limit
        self.limits = dict(limits)
        self.admit = admit
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "").strip()
        if "transfer-encoding" not in headers and declared in ("", "0"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        try:
            if self.admit is not None:
                await self.admit(headers, scope["path"])
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(
                    f"the request body has {int(declared):,} bytes; the limit is {limit:,}"
                )
        except ServiceError as error:
            await self.refuse(error)(scope, receive, send)
            return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, capped, send)
