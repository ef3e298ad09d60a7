"""The gateway's API keys: who may call it, and for what.

A key is a token ``pk_<id>_<secret>`` shown once, when it is made. The id is public (it
is listed, logged and typed by hand to revoke a key); the secret is stored only as its
SHA-256, so a leaked database admits nobody. Each key carries scopes:

- ``predict``: ask for diagnoses and recommendations;
- ``feedback``: send expert corrections (they become retrieval examples);
- ``admin``: manage adapters and benchmarks.

A scope admits only what it names: ``admin`` does not imply ``predict`` or
``feedback``. Keys are least-privilege: an automation that registers adapters should not
also be able to write feedback, which feeds the example pools every later answer is
drawn from. A key that needs several scopes is made with several.

Everything here is synchronous and thread-safe (no state but the engine): the gateway
calls it through ``asyncio.to_thread``. The table comes from the project's migrations
(:meth:`KeyStore.create_schema`), never from ``create_all``.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import JSON, DateTime, Engine, String, UniqueConstraint, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.tables import Base
from services.common.database import migrate
from services.common.errors import Forbidden, NotFound, Unauthorized

log = logging.getLogger(__name__)

SCOPES = ("predict", "feedback", "admin")
TOKEN_PREFIX = "pk"
ID_BYTES = 6  # 12 hex characters: short enough to type, long enough not to collide
SECRET_BYTES = 32  # 256 bits: 43 URL-safe characters
_TOKEN = re.compile(rf"{TOKEN_PREFIX}_([0-9a-f]{{{2 * ID_BYTES}}})_([A-Za-z0-9_-]{{43}})")
_KEY_ID = re.compile(rf"[0-9a-f]{{{2 * ID_BYTES}}}")
NAME_MAX = 100
TOKEN_FORMAT = f"{TOKEN_PREFIX}_<id>_<secret>"


class KeyRow(Base):
    __tablename__ = "gateway_api_keys"
    __table_args__ = (UniqueConstraint("name", name="uq_gateway_api_keys_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class ApiKey:
    """A key as the store reports it: never its secret, nor the secret's hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret. Fast on purpose: the secrets are 256-bit random
    tokens, not passwords, so there is no dictionary to slow down."""
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes in canonical order, without repeats; ``ValueError`` for an unknown one
    or none at all."""
    given = {scopes} if isinstance(scopes, str) else set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {', '.join(map(repr, unknown))}; allowed: {_allowed()}")
    if not given:
        raise ValueError(f"a key needs at least one scope; allowed: {_allowed()}")
    return tuple(scope for scope in SCOPES if scope in given)


class KeyStore:
    """Makes, lists, revokes and checks API keys in the project database.

    ``authenticate`` records when a key was last used, at most once per
    ``touch_interval_s`` per key (default a minute): a write per request would make every
    call a database write, and "last used" only has to tell an operator which keys are
    still alive.
    """

    def __init__(self, engine: Engine, touch_interval_s: float = 60.0) -> None:
        self.engine = engine
        self.touch_interval = timedelta(seconds=touch_interval_s)

    def create_schema(self) -> None:
        """Migrate the project database to the newest schema (Alembic)."""
        migrate(self.engine)

    def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key and its token, ``pk_<id>_<secret>``: the only time the token exists
        outside its holder's hands. ``ValueError`` for a bad or taken name or scope."""
        name = _check_name(name)
        granted = validate_scopes(scopes)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        now = _now()
        for _ in range(3):  # retried only if the 48-bit random id is taken already
            key = ApiKey(secrets.token_hex(ID_BYTES), name, granted, now)
            row = KeyRow(
                id=key.id,
                name=name,
                secret_hash=hash_secret(secret),
                scopes=list(granted),
                created_at=now,
            )
            try:
                with Session(self.engine) as session, session.begin():
                    if session.scalar(select(KeyRow.id).where(KeyRow.name == name)):
                        raise ValueError(_taken(name))
                    session.add(row)
            except IntegrityError as error:  # a concurrent create won the name, or the id
                if self._find(name) is not None:
                    raise ValueError(_taken(name)) from error
                continue
            log.info("API key %s (%s) created with scopes %s", key.id, name, ",".join(granted))
            return key, f"{TOKEN_PREFIX}_{key.id}_{secret}"
        raise RuntimeError("could not draw an unused key id")  # pragma: no cover

    def list(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(select(KeyRow).order_by(KeyRow.created_at, KeyRow.name))
            return [_record(row) for row in rows]

    def revoke(self, name_or_id: str) -> ApiKey:
        """Revoke a key by name or id; ``NotFound`` if there is none. Revoking a revoked
        key changes nothing: it comes back with the time of its first revocation."""
        with Session(self.engine) as session, session.begin():
            row = session.scalars(
                select(KeyRow).where(or_(KeyRow.id == name_or_id, KeyRow.name == name_or_id))
            ).first()
            if row is None:
                raise NotFound(f"no API key named {name_or_id!r} or with that id")
            if row.revoked_at is None:
                row.revoked_at = _now()
                log.info("API key %s (%s) revoked", row.id, row.name)
            return _record(row)

    def authenticate(self, token: str | None) -> ApiKey:
        """The active key a token belongs to; ``Unauthorized`` saying what is wrong
        (missing, malformed, unknown id, wrong secret, revoked), never echoing a secret."""
        if not token or not token.strip():
            raise Unauthorized(f"an API key is needed: send 'Authorization: Bearer {TOKEN_FORMAT}'")
        match = _TOKEN.fullmatch(token.strip())
        if match is None:
            raise Unauthorized(
                f"the API key is malformed: expected {TOKEN_FORMAT}, "
                "as printed by 'ptychoagent keys create'"
            )
        key_id, secret = match.groups()
        with Session(self.engine) as session:
            row = session.get(KeyRow, key_id)
            if row is None:
                raise Unauthorized(f"there is no API key with id {key_id!r}")
            if not hmac.compare_digest(hash_secret(secret), row.secret_hash):
                raise Unauthorized(f"the secret does not match API key {key_id!r}")
            key = _record(row)
        if key.revoked_at is not None:
            raise Unauthorized(
                f"API key {key.name!r} ({key.id}) was revoked at {key.revoked_at.isoformat()}"
            )
        return self._touch(key)

    @staticmethod
    def require(key: ApiKey, scope: str) -> None:
        """``Forbidden`` unless the key has ``scope`` (``admin`` implies nothing else)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; allowed: {_allowed()}")
        if scope not in key.scopes:
            raise Forbidden(
                f"API key {key.name!r} lacks the {scope!r} scope "
                f"(it has: {', '.join(key.scopes) or 'none'})",
                required_scope=scope,
                key_scopes=list(key.scopes),
            )

    def _find(self, name: str) -> str | None:
        with Session(self.engine) as session:
            return session.scalar(select(KeyRow.id).where(KeyRow.name == name))

    def _touch(self, key: ApiKey) -> ApiKey:
        """Record the use if the last recorded one is older than the interval; the
        condition is repeated in the UPDATE, so racing requests (threads or replicas)
        write once. A failed write is logged, never a reason to refuse the caller."""
        now = _now()
        if key.last_used_at is not None and now - key.last_used_at < self.touch_interval:
            return key
        stale = or_(KeyRow.last_used_at.is_(None), KeyRow.last_used_at <= now - self.touch_interval)
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(KeyRow).where(KeyRow.id == key.id, stale).values(last_used_at=now)
                )
        except SQLAlchemyError as error:
            log.warning("could not record the use of API key %s: %s", key.id, error)
            return key
        return replace(key, last_used_at=now)


def _record(row: KeyRow) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        created_at=_utc(row.created_at),
        last_used_at=_utc(row.last_used_at) if row.last_used_at else None,
        revoked_at=_utc(row.revoked_at) if row.revoked_at else None,
    )


def _check_name(name: str) -> str:
    if not name or name != name.strip() or not name.isprintable() or len(name) > NAME_MAX:
        raise ValueError(
            f"a key name is 1 to {NAME_MAX} printable characters without surrounding "
            f"spaces, got {name!r}"
        )
    if _KEY_ID.fullmatch(name):
        raise ValueError(f"a key name must not look like a key id ({name!r}): revoke takes both")
    return name


def _taken(name: str) -> str:
    return f"an API key named {name!r} exists already (revoked keys keep their names)"


def _allowed() -> str:
    return ", ".join(SCOPES)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; everything stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
