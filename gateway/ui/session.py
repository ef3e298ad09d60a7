"""The review page's session: the API key in an HttpOnly cookie, checked on every
request (:data:`SessionReader`, :data:`SessionViewer`: the session's key, admitted by
the API's rule), and a double-submit CSRF token for every form post."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response
from starlette.exceptions import HTTPException

from gateway.auth import Action, authenticate, require
from gateway.deps import KeysDep
from gateway.keys import ApiKey, KeyStore
from services.common.errors import Unauthorized

KEY_COOKIE = "ptycho_ui_key"
CSRF_COOKIE = "ptycho_ui_csrf"
CSRF_FIELD = "csrf_token"
PATH = "/ui"


class LoginRequired(HTTPException):
    """No key in the session, or one the gateway no longer accepts: back to the login
    form (a 303 the app's error handler sends with these headers), the cookie cleared."""

    def __init__(self, request: Request) -> None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        expired = KEY_COOKIE in request.cookies
        location = f"{PATH}/login?next={quote(target, safe='/')}"
        if expired:
            location += "&expired=1"
        clear = f"{KEY_COOKIE}=; Max-Age=0; Path={PATH}; HttpOnly; SameSite=Strict"
        super().__init__(303, "sign in first", headers={"Location": location, "Set-Cookie": clear})


class CsrfRefused(HTTPException):
    def __init__(self) -> None:
        super().__init__(403, "the form's CSRF token is missing or does not match; reload it")


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def session_key(request: Request, keys: KeyStore) -> ApiKey:
    """The key of the session, checked against the key store now."""
    token = request.cookies.get(KEY_COOKIE)
    if not token:
        raise LoginRequired(request)
    try:
        return await authenticate(keys, token)
    except Unauthorized:
        raise LoginRequired(request) from None


def session(action: Action) -> Callable[[Request, KeyStore], Awaitable[ApiKey]]:
    """The review page's session key, admitted to ``action`` by the API's rule."""

    async def admitted(request: Request, keys: KeysDep) -> ApiKey:
        found = await session_key(request, keys)
        require(found, action)
        return found

    return admitted


SessionReader = Annotated[ApiKey, Depends(session("read"))]
SessionViewer = Annotated[ApiKey, Depends(session("benchmarks"))]


def set_key(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        KEY_COOKIE,
        token,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def clear_key(response: Response) -> None:
    response.delete_cookie(KEY_COOKIE, path=PATH, httponly=True, samesite="strict")


def csrf_token(request: Request) -> str:
    """The session's CSRF token (a new one when the browser has none; ``remember_csrf``
    then sets it on the response)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "ui_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.ui_csrf = token
    return str(token)


def remember_csrf(response: Response, request: Request) -> None:
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE,
            csrf_token(request),
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )


def check_csrf(request: Request, submitted: str | None) -> None:
    """``CsrfRefused`` unless the form's token equals the cookie's (double submit)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        raise CsrfRefused()


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path of this UI, never another site."""
    if (
        target
        and "\\" not in target
        and (target == PATH or target.startswith((f"{PATH}/", f"{PATH}?")))
    ):
        return target
    return PATH
