"""The Alembic migrations build exactly the tables ``schema.py`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from monitoring.storage.engine import get_engine, head_revision, latest_revision, schema_revision
from monitoring.storage.schema import metadata


def test_the_migrations_build_the_declared_schema(settings) -> None:
    engine = get_engine(settings.database_url)  # a new database: every migration runs
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []
    assert schema_revision(settings.database_url) == head_revision() == "0005"
    assert latest_revision() == head_revision()  # a current store opens without Alembic
