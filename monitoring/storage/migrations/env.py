"""Alembic environment: migrations run on the connection the store hands over.

The service upgrades the schema itself when a process first opens a store
(:func:`monitoring.storage.engine.get_engine`), and ``python -m monitoring db
upgrade`` does it on purpose (Heroku's release phase). Run from the ``alembic``
command line (``alembic revision --autogenerate -m ...`` while developing), this
connects to ``sqlalchemy.url`` of ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from monitoring.storage.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # the alembic command line
    connection = create_engine(config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
