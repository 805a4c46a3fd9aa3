"""Alembic environment for the EverTask tables.

Driven programmatically by :mod:`evertask_storage_efcore_like.migrate`: online runs get
an open connection in ``config.attributes["connection"]``; offline runs (SQL scripts for
DBAs) get a dialect name in ``config.attributes["dialect"]``. No ``fileConfig``: the
application's logging is left alone. The target schema is
``config.attributes["schema"]`` (``None``: the default schema).
"""

from __future__ import annotations

from alembic import context

from evertask_storage_efcore_like.migrate import (
    VERSION_TABLE,
    create_schema_sql,
    lock_sql,
    unlock_sql,
)

config = context.config
schema: str | None = config.attributes.get("schema")

if context.is_offline_mode():
    dialect_name: str = config.attributes["dialect"]
    context.configure(
        dialect_name=dialect_name,
        literal_binds=True,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        output_buffer=config.attributes.get("output"),
    )
    with context.begin_transaction():
        if schema is not None:
            context.execute(create_schema_sql(dialect_name, schema))
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    dialect_name = connection.dialect.name
    lock = lock_sql(dialect_name)
    if lock is not None:
        connection.exec_driver_sql(lock)  # serialise concurrent starts (see lock_sql)
    unlock = unlock_sql(dialect_name)
    try:
        if schema is not None:
            connection.exec_driver_sql(create_schema_sql(dialect_name, schema))
        context.configure(
            connection=connection,
            version_table=VERSION_TABLE,
            version_table_schema=schema,
            on_version_apply=config.attributes.get("on_version_apply", ()),
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if unlock is not None:
            connection.exec_driver_sql(unlock)
