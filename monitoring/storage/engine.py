"""Connecting to the record store: URLs, engines, the schema, locks across processes.

The store is an embedded SQLite file by default, PostgreSQL by URL (psycopg 3). A
process opening a store brings its schema up to date with Alembic, one process at a
time. :func:`exclusive` is the lock that lets one pipeline operation run at a time
on every host that shares the store: a PostgreSQL advisory lock, or an ``flock``
beside the SQLite file (which only processes of one host can share anyway).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import DBAPIError

from monitoring.exceptions import AlreadyRunningError, StoreUnavailableError

if TYPE_CHECKING:  # Alembic loads only to migrate or to read revisions
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_engines: dict[tuple[int, str], Engine] = {}
_upgraded: set[tuple[int, str]] = set()  # engines whose schema this process brought up to date
_engines_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """``url`` with the psycopg 3 driver for PostgreSQL, whichever form was given.

    Heroku sets ``postgres://``, which SQLAlchemy does not know, and a bare
    ``postgresql://`` would pick psycopg2, which is not installed.

    Examples
    --------
    >>> normalize_url("postgres://u:p@db.example.com:5432/prod")
    'postgresql+psycopg://u:p@db.example.com:5432/prod'
    >>> normalize_url("sqlite:////tmp/m.db")
    'sqlite:////tmp/m.db'
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite ``url``; None for another database or ``:memory:``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    for pragma in ("journal_mode=WAL", "busy_timeout=10000", "synchronous=NORMAL"):
        dbapi_connection.execute(f"PRAGMA {pragma}").close()


def get_engine(url: str, *, upgrade: bool = True) -> Engine:
    """One engine per process and URL (engines must not cross a fork), its schema current.

    ``upgrade=False`` leaves the schema as it is (a later call with ``upgrade``
    still brings it up to date).

    Raises
    ------
    StoreUnavailableError
        If the database cannot be reached to bring the schema up to date.
    """
    key = (os.getpid(), url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            file = sqlite_file(url)
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
            options: dict[str, Any] = {}
            if make_url(url).get_backend_name() == "postgresql":
                # Reconnect after a restart of the server; never wait long for one that is gone.
                options = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}}
            engine = create_engine(url, **options)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            _engines[key] = engine
        if upgrade and key not in _upgraded:
            try:
                upgrade_schema(engine)
            except DBAPIError as exc:
                raise unavailable(url, exc) from exc
            _upgraded.add(key)
        return engine


# SQLite's result codes for a file that is not (or no longer) a database.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


def is_corrupt(exc: BaseException) -> bool:
    """Whether a driver error says the database file is damaged (SQLite's
    ``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``), rather than out of reach."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlite_errorcode", None) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def unavailable(url: str, exc: BaseException) -> StoreUnavailableError:
    """The one-line error for a store that cannot be reached."""
    first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
    return StoreUnavailableError(
        f"cannot reach the record store at {safe_url(url)}: {first[0] if first else exc}"
    )


_MIGRATION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


def latest_revision() -> str | None:
    """The latest revision of this release's migrations, read from their file names
    (``0003_...py`` is revision ``0003``; tests hold it to Alembic's head), so a store
    already up to date is opened without loading Alembic."""
    found = [
        m[1] for p in (MIGRATIONS / "versions").iterdir() if (m := _MIGRATION_FILE.match(p.name))
    ]
    return max(found, default=None)


def _up_to_date(conn: Connection, tables: set[str]) -> bool:
    if "alembic_version" not in tables:
        return False
    stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return stored == [latest_revision()]


def upgrade_schema(engine: Engine) -> None:
    """Run the Alembic migrations up to the latest, one process at a time.

    A database created before migrations existed (its tables are those of revision
    0001) is stamped 0001 first. A store already at the latest revision is left as it
    is without loading Alembic.

    Raises
    ------
    StoreUnavailableError
        If the database is at a revision these migrations do not know (a newer release).
    """
    with _schema_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # released when the transaction ends
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("schema")})
        tables = set(inspect(conn).get_table_names())
        if _up_to_date(conn, tables):
            return
        from alembic import command  # lazy: a current store needs no Alembic
        from alembic.util import CommandError  # lazy: as above

        config = alembic_config()
        config.attributes["connection"] = conn
        if "alembic_version" not in tables and "runs" in tables:
            command.stamp(config, "0001")
        try:
            command.upgrade(config, "head")
        except CommandError as exc:  # e.g. "Can't locate revision identified by '0009'"
            raise StoreUnavailableError(
                f"cannot upgrade the record store at {safe_url(str(engine.url))}: {exc}; "
                "is it used by a newer release?"
            ) from exc


def alembic_config() -> Config:
    """Alembic's configuration for the migrations of this release (no database URL)."""
    from alembic.config import Config  # lazy: Alembic only to migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """The latest revision of the migrations in this release."""
    from alembic.script import ScriptDirectory  # lazy: Alembic only to migrate

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    """Every revision of the migrations in this release."""
    from alembic.script import ScriptDirectory  # lazy: Alembic only to migrate

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def schema_revision(url: str) -> str | None:
    """The revision the store at ``url`` is at, without upgrading it.

    None for a store no migration has run on: a new one, or one made before
    migrations existed.
    """
    from alembic.runtime.migration import MigrationContext  # lazy: Alembic only to migrate

    with get_engine(url, upgrade=False).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(url: str) -> tuple[str | None, str | None]:
    """Bring the store at ``url`` up to the latest revision; return (before, after).

    Raises
    ------
    StoreUnavailableError
        If the database cannot be reached or is at a revision this release does not know.
    """
    try:
        before = schema_revision(url)
        engine = get_engine(url, upgrade=False)
        upgrade_schema(engine)
        _upgraded.add((os.getpid(), url))
        return before, schema_revision(url)
    except DBAPIError as exc:
        raise unavailable(url, exc) from exc


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """Between processes sharing a SQLite file: held until the migration has committed."""
    file = sqlite_file(engine.url.render_as_string(hide_password=False))
    if file is None:
        yield
        return
    with open(f"{file}.schema-lock", "a") as handle:  # closing it releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock named ``name``."""
    digest = hashlib.sha256(f"monitoring:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def exclusive(url: str, name: str, *, what: str) -> Iterator[None]:
    """Hold the store-wide lock ``name`` for the ``with`` block, or refuse at once.

    The lock dies with the process (or its database session), so a killed run never
    leaves it held.

    Raises
    ------
    AlreadyRunningError
        If another process, on any host sharing the store, holds it.
    """
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{file}.{name}-lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunningError(f"{what} is already running; try again later") from None
            yield
        return
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":  # an in-memory database: one process only
        yield
        return
    key = {"key": lock_key(name)}
    with engine.connect() as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            raise AlreadyRunningError(f"{what} is already running; try again later")
        conn.commit()
        try:
            yield
        finally:
            with contextlib.suppress(DBAPIError):  # a lost session released it already
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), key)
                conn.commit()
