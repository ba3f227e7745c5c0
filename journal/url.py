"""A journal database URL, and what of it may be shown: host, port, database, user; never the
password. Parsed without the database driver, so even a missing driver gets a clear message."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..api.messages import Message, english, said
from ..api.what import What

PG_SCHEMES = ("postgresql", "postgres")
DEFAULT_PORT = 5432


def is_database_url(value: str) -> bool:
    return value.split("://", 1)[0].lower() in PG_SCHEMES and "://" in value


@dataclass(frozen=True)
class DatabaseUrl:
    host: str
    port: int
    database: str
    user: str
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        """``postgresql://user:password@host:port/database``; a missing host means the local
        Unix socket (libpq's default), a ``?host=/dir`` query names a socket folder."""
        parts = urlsplit(url)
        query: dict[str, str] = {}
        for pair in parts.query.split("&"):
            name, _, value = pair.partition("=")
            query[name] = value
        try:
            port = parts.port or int(query.get("port") or DEFAULT_PORT)
        except ValueError:
            port = DEFAULT_PORT
        host = unquote(parts.hostname or query.get("host") or "") or "local socket"
        user = unquote(parts.username or query.get("user") or "")
        database = unquote(parts.path.lstrip("/")) or query.get("dbname") or user
        password = unquote(parts.password) if parts.password else query.get("password") or None
        return cls(host=host, port=port, database=database, user=user, password=password)

    @property
    def display(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"postgresql://{who}{self.host}:{self.port}/{self.database}"

    def describe(self) -> str:
        return english(self.message())

    def message(self) -> Message:
        """Where the database is, as messages name it (host, port, database; no password)."""
        return said(What.POSTGRES_AT, host=self.host, port=self.port, database=repr(self.database))
