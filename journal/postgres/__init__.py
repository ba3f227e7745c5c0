"""The journal in PostgreSQL, shared by a fleet of workers: ``PgJournal(url, rate)``.

Importing it imports the driver (psycopg, an optional extra): only ``open.open_journal`` does.
"""

from .journal import PgJournal

__all__ = ["PgJournal"]
