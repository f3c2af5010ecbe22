"""The database of ibet: SQLAlchemy engines and the schema, migrated by Alembic from inside the package.

SQLite (a file, created with its folder) for the embedded mode and tests, PostgreSQL when distributed.
Code that uses the database writes portable SQLAlchemy Core; the only per-dialect code is here, in how
a SQLite connection is opened (``BEGIN IMMEDIATE``, so concurrent writers queue instead of failing).

    >>> engine = make_engine(DatabaseSettings(url="sqlite:///var/ibet.sqlite3"))  # doctest: +SKIP
    >>> migrate(engine)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ibet.config import DatabaseSettings
from ibet.exceptions import ConfigError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 30.0


def make_engine(settings: DatabaseSettings) -> Engine:
    """An engine for ``settings.url``; for a SQLite file, its folder is created first.

    ConfigError for a URL SQLAlchemy cannot read or whose driver is not installed.
    """
    try:
        url = make_url(settings.url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"database.url: cannot read {settings.url!r} as an SQLAlchemy URL: {exc}") from None
    if url.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ImportError as exc:
            raise ConfigError(f"database.url: the driver for {url.drivername} is not installed: {exc}") from None
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN handling off; we emit BEGIN below
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        # Write-ahead log: readers do not wait for the writer, and a commit appends to the log instead
        # of rewriting pages. synchronous=NORMAL syncs at checkpoints: a committed transaction survives
        # the process being killed (the outbox's promise); a power cut may lose the last few commits,
        # which is why production runs PostgreSQL.
        dbapi_connection.execute("PRAGMA journal_mode = WAL")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection) -> None:
        # Take the write lock at the start of every transaction: two transactions that read, then
        # write, would otherwise deadlock on the lock upgrade and one fail with "database is locked".
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic configuration pointing at the package's migration scripts (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema of ``engine``'s database up to ``revision`` (Alembic upgrade); idempotent."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
