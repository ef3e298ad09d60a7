"""The gateway's API keys against real databases: SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, make_url, select, text, update
from sqlalchemy.orm import Session

from gateway.keys import SCOPES, KeyRow, KeyStore
from services.common.database import head_revision, make_engine, migrate, revision_of
from services.common.errors import Forbidden, NotFound, Unauthorized


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a schema of its own in the session's
    PostgreSQL database (dropped afterwards, so the tables other tests migrate in the
    public schema are never touched)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"keys_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(base)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[KeyStore]:
    engine = make_engine(database_url)
    store = KeyStore(engine)
    store.create_schema()
    yield store
    engine.dispose()


def _stored(store: KeyStore, key_id: str) -> KeyRow:
    with Session(store.engine) as session:
        row = session.get(KeyRow, key_id)
        assert row is not None
        session.expunge(row)
        return row


def test_the_migration_makes_the_table_the_model_maps(store: KeyStore) -> None:
    assert revision_of(store.engine) == head_revision()
    with store.engine.connect() as connection:
        columns = {c["name"] for c in inspect(connection).get_columns("gateway_api_keys")}
    assert columns == set(KeyRow.__table__.columns.keys())
    migrate(store.engine)  # idempotent


def test_a_token_is_shown_once_and_only_the_hash_of_its_secret_is_stored(
    store: KeyStore,
) -> None:
    key, token = store.create("beamline 2-ID-D", ["feedback", "predict", "predict"])
    assert key.scopes == ("predict", "feedback")  # canonical order, no repeats
    prefix, key_id, secret = token.split("_", 2)
    assert (prefix, key_id) == ("pk", key.id)
    assert len(key.id) == 12
    assert len(secret) == 43
    row = _stored(store, key.id)
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in row.secret_hash
    assert token not in repr(vars(row))
    authenticated = store.authenticate(token)
    assert replace(authenticated, last_used_at=None) == key
    assert [k.name for k in store.list()] == ["beamline 2-ID-D"]
    assert not any(secret in repr(k) for k in store.list())


def test_two_keys_get_different_ids_and_secrets(store: KeyStore) -> None:
    (a, token_a), (b, token_b) = store.create("a", ["predict"]), store.create("b", ["predict"])
    assert a.id != b.id
    assert token_a.split("_", 2)[2] != token_b.split("_", 2)[2]
    assert store.authenticate(token_b).name == "b"


def test_every_way_a_token_can_be_wrong_is_refused_and_named(store: KeyStore) -> None:
    key, token = store.create("ci", ["predict"])
    secret = token.split("_", 2)[2]
    other_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    cases = {
        None: "an API key is needed",
        "": "an API key is needed",
        "   ": "an API key is needed",
        "not-a-key": "malformed",
        f"pk_{key.id}_short": "malformed",
        # An id in capitals (forced: a random id may have no letter to raise).
        f"pk_F{key.id[1:].upper()}_{secret}": "malformed",
        f"pk_{'0' * 12}_{secret}": "no API key with id '000000000000'",
        f"pk_{key.id}_{other_secret}": f"the secret does not match API key '{key.id}'",
    }
    for given, message in cases.items():
        with pytest.raises(Unauthorized, match=message) as caught:
            store.authenticate(given)
        assert secret not in caught.value.detail
        assert other_secret not in caught.value.detail
    assert store.authenticate(f"  {token}\n").id == key.id  # pasted with whitespace


def test_a_revoked_key_is_refused_and_revoking_again_changes_nothing(store: KeyStore) -> None:
    key, token = store.create("old laptop", ["predict"])
    kept, kept_token = store.create("kept", ["predict"])
    first = store.revoke(key.id)
    assert first.revoked_at is not None
    assert not first.active
    with pytest.raises(Unauthorized, match=r"'old laptop' \(\w{12}\) was revoked at"):
        store.authenticate(token)
    assert store.revoke("old laptop").revoked_at == first.revoked_at
    assert store.authenticate(kept_token).id == kept.id
    assert [k.active for k in store.list()] == [False, True]
    with pytest.raises(NotFound, match="no API key named 'nobody'"):
        store.revoke("nobody")


def test_scopes_are_enforced_and_admin_implies_nothing_else(store: KeyStore) -> None:
    admin, _ = store.create("ops", ["admin"])
    predictor, _ = store.create("beamline", ["predict", "feedback"])
    KeyStore.require(admin, "admin")
    store.require(predictor, "predict")
    store.require(predictor, "feedback")
    with pytest.raises(Forbidden, match="'ops' lacks the 'predict' scope \\(it has: admin\\)"):
        store.require(admin, "predict")
    with pytest.raises(Forbidden) as caught:
        store.require(predictor, "admin")
    assert caught.value.extra == {"required_scope": "admin", "key_scopes": ["predict", "feedback"]}
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        store.require(admin, "root")


def test_bad_names_and_scopes_are_refused(store: KeyStore) -> None:
    store.create("ci", ["predict"])
    with pytest.raises(ValueError, match="'ci' exists already"):
        store.create("ci", ["admin"])
    with pytest.raises(
        ValueError, match="unknown scope 'root', 'write'; allowed: " + ", ".join(SCOPES)
    ):
        store.create("x", ["predict", "write", "root"])
    with pytest.raises(ValueError, match="at least one scope"):
        store.create("x", [])
    for name in ("", " padded", "a" * 101, "line\nbreak", "0123456789ab"):
        with pytest.raises(ValueError, match="key name"):
            store.create(name, ["predict"])
    assert [k.name for k in store.list()] == ["ci"]


def test_last_use_is_written_at_most_once_a_minute(store: KeyStore) -> None:
    key, token = store.create("busy", ["predict"])
    assert key.last_used_at is None
    first = store.authenticate(token).last_used_at
    assert first is not None
    assert _stored(store, key.id).last_used_at is not None
    assert store.authenticate(token).last_used_at == first  # no write within the minute
    assert [k.last_used_at for k in store.list()] == [first]
    earlier = first - timedelta(minutes=2)
    with store.engine.begin() as connection:
        connection.execute(update(KeyRow).where(KeyRow.id == key.id).values(last_used_at=earlier))
    later = store.authenticate(token).last_used_at
    assert later is not None
    assert later >= first
    assert [k.last_used_at for k in store.list()] == [later]


def test_concurrent_requests_authenticate_from_threads(store: KeyStore) -> None:
    _, token = store.create("parallel", ["predict"])
    with ThreadPoolExecutor(max_workers=8) as pool:
        names = list(pool.map(lambda _: store.authenticate(token).name, range(32)))
    assert names == ["parallel"] * 32
    with store.engine.connect() as connection:
        assert connection.execute(select(KeyRow.last_used_at)).scalar() is not None


def test_the_migration_goes_down_and_up_again(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from services.common.database import MIGRATIONS

    engine = make_engine(database_url)
    migrate(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    tables = set(inspect(engine).get_table_names())
    assert "gateway_api_keys" not in tables
    assert "retriever_examples" in tables
    migrate(engine)
    assert "gateway_api_keys" in inspect(engine).get_table_names()
    engine.dispose()
