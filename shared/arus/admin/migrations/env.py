"""Alembic environment: the versioned migrations, on the connection `arus.admin.migrate` gives."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    # One migrator at a time: concurrent `arus migrate` runs (several instances starting at
    # once) queue on this lock instead of racing on DDL.
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727373)")
    context.run_migrations()
