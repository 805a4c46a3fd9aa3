"""Alembic migrations of the EverTask tables (applied by ``..migrate``)."""
