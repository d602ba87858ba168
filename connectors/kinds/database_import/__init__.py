"""Database import: a SQL query against a PostgreSQL database, incrementally by a cursor
column, rows into a stream as events."""

from __future__ import annotations

from connectors.kinds.database_import.kind import DatabaseImport

__all__ = ["DatabaseImport"]
