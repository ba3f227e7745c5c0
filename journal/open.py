"""The one place a journal backend is chosen: a local SQLite file, or a shared PostgreSQL database.

``GROK_IMAGINE_JOURNAL_URL=postgresql://user:password@host:5432/db`` (or the CLI's
``--journal-url``) moves the journal into PostgreSQL so a fleet of workers shares it; without it
nothing changes. The driver is an optional extra and is imported only here, only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..api.env import JOURNAL_URL_ENV
from ..api.messages import Fact, said
from ..api.what import What
from .pacing import CreateRate, rate_from_env
from .store import JournalDriverMissingError, JournalUnavailableError, LedgerStore
from .url import DatabaseUrl, is_database_url

DRIVER_PACKAGE = '"psycopg[binary]>=3.1"'
"""The optional driver (the pack's ``postgres`` extra); named, never installed by the pack."""


class JournalUrlError(JournalUnavailableError):
    """A journal URL that is not a PostgreSQL URL. Refused, never taken for a file name: a typo
    must not quietly give each worker a journal of its own (and a fleet double charges)."""


def journal_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(JOURNAL_URL_ENV, "").strip()
    return checked_journal_url(value, JOURNAL_URL_ENV) if value else None


def checked_journal_url(value: str, source: str) -> str:
    """``value`` if it is a ``postgresql://`` URL, else ``JournalUrlError`` naming ``source``.

    The message quotes at most the scheme: whatever follows it may hold a password."""
    if is_database_url(value):
        return value
    scheme = value.split("://", 1)[0] if "://" in value else ""
    found: Fact = (
        said(What.STARTS_WITH, scheme=repr(scheme + "://"))
        if scheme.isalnum()
        else said(What.HAS_NO_SCHEME)
    )
    raise JournalUrlError(said(What.JOURNAL_URL_WRONG, source=source, found=found))


def open_journal(
    target: str | os.PathLike[str], rate: CreateRate | str | None = "env"
) -> LedgerStore:
    """A PostgreSQL journal for a ``postgresql://`` URL, else the SQLite journal at that path.

    ``rate`` paces creates across everything using the journal, one machine's file or a fleet's
    database (``"env"``: ``GROK_IMAGINE_CREATE_RATE``, else the provider's ~20 per 10 s; None:
    no pacing, for a journal only read). Raises ``JournalUnavailableError`` (a ``GrokError``)
    when the journal cannot be used, before anything is paid for.
    """
    pace = rate_from_env() if rate == "env" else rate
    assert not isinstance(pace, str)
    if isinstance(target, str) and is_database_url(target):
        return _open_postgres(target, pace)
    from .sqlite import Journal

    return Journal(Path(target), pace)


def _open_postgres(url: str, rate: CreateRate | None) -> LedgerStore:
    try:
        from .postgres import PgJournal
    except ImportError as exc:
        if exc.name not in ("psycopg", "psycopg_binary", "psycopg_c"):
            raise
        where = DatabaseUrl.parse(url)
        raise JournalDriverMissingError(
            said(What.DRIVER_MISSING, where=where.message(), driver=DRIVER_PACKAGE),
            where=where.display,
        ) from None
    return PgJournal(url, rate)
