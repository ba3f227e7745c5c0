"""The journal in SQLite, on one machine (the default): ``Journal(path)``."""

from .journal import Journal
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Journal"]
