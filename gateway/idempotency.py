"""Idempotency-Keys: a request sent again with the same key gets the same answer, with
no second model call, whichever process or host it reaches.

A key is claimed in the database before the model is called
(:meth:`IdempotencyTables.claim`: a row under the key's primary key, so of concurrent
requests in any process on any host exactly one gets it) and answered in the
transaction that stores the prediction (:func:`answer_claim`, called by
``gateway.predictions``), so an answer is never stored twice nor without its key. A
claim whose process died is taken over after its lease; a failed call gives the key
back (:meth:`IdempotencyTables.release`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.keys import ApiKey
from gateway.locks import KeyedLocks
from gateway.settings import GatewaySettings
from gateway.tables import IdempotencyRow, Tables
from services.common.database import as_utc
from services.common.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from gateway.store import PredictionStore

IDEMPOTENCY_KEY_MAX = 200


@dataclass(frozen=True)
class Replay:
    """What an ``Idempotency-Key`` was first used for, and the answer given then (None:
    another request holds the key and is still asking the model)."""

    endpoint: str
    request_hash: str
    response: dict[str, Any] | None


@dataclass
class Claim:
    """This request holds an Idempotency-Key: it asks the model, and its answer is
    stored with the prediction (``answered`` then)."""

    api_key_id: str
    key: str
    token: str
    answered: bool = False


def request_hash(endpoint: str, options: BaseModel, image: bytes | None = None) -> str:
    """What an Idempotency-Key is bound to: the endpoint, the options and the image."""
    digest = hashlib.sha256(endpoint.encode())
    digest.update(json.dumps(options.model_dump(mode="json"), sort_keys=True).encode())
    if image is not None:
        digest.update(hashlib.sha256(image).digest())
    return digest.hexdigest()


class IdempotencyTables(Tables):
    """The store functions of Idempotency-Keys."""

    def claim(
        self,
        api_key_id: str,
        key: str,
        endpoint: str,
        request_hash: str,
        lease: timedelta,
        max_age: timedelta | None = None,
    ) -> Claim | Replay | None:
        """Claim an Idempotency-Key for one model call, the database deciding between
        concurrent requests (the row's primary key). A :class:`Claim` when this request
        is to ask the model; the key's :class:`Replay` when another request answered it
        (or holds it: ``response`` None); None when it changed hands meanwhile (ask
        again). An answer older than ``max_age``, or a claim older than ``lease`` (its
        holder died), is taken over."""
        token = uuid.uuid4().hex
        now = datetime.now(UTC)
        claimed = {  # what a claim writes, whether it inserts the row or takes it over
            "endpoint": endpoint,
            "request_hash": request_hash,
            "response": None,
            "created_at": now,
            "claim": token,
            "answered_at": None,
        }
        with Session(self.engine) as session:
            session.add(IdempotencyRow(api_key_id=api_key_id, key=key, **claimed))
            try:
                session.commit()
                return Claim(api_key_id, key, token)
            except IntegrityError:
                session.rollback()
            row = session.get(IdempotencyRow, (api_key_id, key))
            if row is None:
                return None  # released or expired since the insert failed
            if row.answered_at is None:
                stale = now - as_utc(row.created_at) > lease
            else:
                stale = max_age is not None and now - as_utc(row.answered_at) > max_age
            if not stale:
                return Replay(row.endpoint, row.request_hash, row.response)
            taken = session.execute(
                update(IdempotencyRow)
                .where(*_key(api_key_id, key), IdempotencyRow.claim == row.claim)
                .values(**claimed)
            )
            session.commit()
            return Claim(api_key_id, key, token) if _count(taken) == 1 else None

    def answer(self, claim: Claim, response: dict[str, Any]) -> None:
        """Keep the answer of a claimed key (when no prediction was stored with it)."""

        def write() -> None:
            with Session(self.engine) as session, session.begin():
                answer_claim(session, claim, response)

        self._retrying(write)
        claim.answered = True

    def release(self, claim: Claim) -> None:
        """Give a claimed key back unanswered (the call failed): the next request with
        it asks the model."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                delete(IdempotencyRow).where(
                    *_key(claim.api_key_id, claim.key),
                    IdempotencyRow.claim == claim.token,
                    IdempotencyRow.answered_at.is_(None),
                )
            )

    def replay(self, api_key_id: str, key: str, max_age: timedelta | None = None) -> Replay | None:
        """The answer kept for an Idempotency-Key, unless it is older than ``max_age``
        (then it is forgotten and the key may be used afresh), or there is none yet."""
        with Session(self.engine) as session:
            row = session.get(IdempotencyRow, (api_key_id, key))
            if row is None or row.answered_at is None or row.response is None:
                return None
            if max_age is not None and datetime.now(UTC) - as_utc(row.answered_at) > max_age:
                session.delete(row)
                session.commit()
                return None
            return Replay(row.endpoint, row.request_hash, dict(row.response))

    def remember(
        self, api_key_id: str, key: str, endpoint: str, request_hash: str, response: dict[str, Any]
    ) -> Replay:
        """Keep an answer for its Idempotency-Key at once (claimed and answered); if
        another request holds the key, its answer (or its claim) is returned."""
        got = self.claim(api_key_id, key, endpoint, request_hash, timedelta.max)
        if isinstance(got, Claim):
            self.answer(got, response)
            return Replay(endpoint, request_hash, response)
        if got is None:  # pragma: no cover - the row that collided is gone
            raise InvalidInput("the Idempotency-Key could not be recorded")
        return got


def _key(api_key_id: str, key: str) -> tuple[Any, Any]:
    return IdempotencyRow.api_key_id == api_key_id, IdempotencyRow.key == key


def _count(result: Any) -> int:
    return int(result.rowcount)


def answer_claim(session: Session, claim: Claim, response: dict[str, Any]) -> None:
    """Answer a claimed key in ``session``'s transaction; ``Conflict`` when the claim
    is no longer this request's (its lease ran out and another request took the key)."""
    answered = session.execute(
        update(IdempotencyRow)
        .where(
            *_key(claim.api_key_id, claim.key),
            IdempotencyRow.claim == claim.token,
            IdempotencyRow.answered_at.is_(None),
        )
        .values(response=response, answered_at=datetime.now(UTC))
    )
    if _count(answered) != 1:
        raise Conflict(
            f"Idempotency-Key {claim.key!r} was taken over while the model answered (its "
            "lease ran out); send the request again for the answer that counts"
        )


class Idempotency:
    """Answers once per Idempotency-Key (see the module's docstring)."""

    def __init__(self, settings: GatewaySettings, store: PredictionStore) -> None:
        self.settings = settings
        self.store = store
        self._key_locks = KeyedLocks()

    async def once(
        self,
        key: ApiKey,
        idempotency_key: str | None,
        endpoint: str,
        fingerprint: str,
        compute: Callable[[Claim | None], Awaitable[BaseModel]],
    ) -> tuple[dict[str, Any], bool]:
        """The answer as JSON, and whether it is a replay.

        With an Idempotency-Key the model is asked once, whichever process or host
        each request reaches: the key is claimed in the database first, ``compute``
        stores its prediction and the answer together under that claim, and a request
        with the same key gets the stored answer. A duplicate that arrives while the
        first is still being answered waits for it (up to ``idempotency_wait_s``, then a
        409 it may send again); the same key for a different request is a 422; a
        failed call gives the key back, so the next try asks the model."""
        if idempotency_key is None:
            return (await compute(None)).model_dump(mode="json"), False
        if not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise InvalidInput(f"Idempotency-Key must have 1 to {IDEMPOTENCY_KEY_MAX} characters")
        settings = self.settings
        max_age = timedelta(hours=settings.idempotency_ttl_h)
        lease = timedelta(seconds=settings.idempotency_lease_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.idempotency_wait_s
        pause = 0.02
        # duplicates within this process queue here; across processes, on the database
        async with self._key_locks.hold((key.id, idempotency_key)):
            while True:
                got = await asyncio.to_thread(
                    self.store.claim, key.id, idempotency_key, endpoint, fingerprint, lease, max_age
                )
                if isinstance(got, Claim):
                    return await self._answer_claimed(got, compute), False
                if got is not None:
                    if (got.endpoint, got.request_hash) != (endpoint, fingerprint):
                        raise InvalidInput(
                            f"Idempotency-Key {idempotency_key!r} was used for a different "
                            f"request ({got.endpoint}); use a new key for a new request"
                        )
                    if got.response is not None:
                        return got.response, True
                if loop.time() >= deadline:
                    raise Conflict(
                        f"a request with Idempotency-Key {idempotency_key!r} is still being "
                        "answered; send it again later for its answer"
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)

    async def _answer_claimed(
        self, claim: Claim, compute: Callable[[Claim | None], Awaitable[BaseModel]]
    ) -> dict[str, Any]:
        try:
            answer = (await compute(claim)).model_dump(mode="json")
            if not claim.answered:  # nothing was stored with it
                await asyncio.to_thread(self.store.answer, claim, answer)
        except BaseException:
            if not claim.answered:
                await asyncio.to_thread(self.store.release, claim)
            raise
        return answer
