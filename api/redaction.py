"""Keys a server echoes back are masked wherever they could come out again.

* ``safe_url``: a result URL as it may be stored (journal) or shown (the ``urls`` output, status
  lines): userinfo dropped, remembered keys masked. The raw URL is used only for the download.
* urllib3 logs every request line at DEBUG (``"GET /files/x.jpg?token=... HTTP/1.1" 200``) and
  every retry with its URL: a filter on those loggers masks keys and userinfo before a record
  reaches any handler (``install``, called when a session is made).
"""

from __future__ import annotations

import logging
import re
import threading

from . import errors

HTTP_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")

_installed = False
_installed_lock = threading.Lock()


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with keys masked and URL userinfo dropped; never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to logging
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def redact_text(text: str) -> str:
    """``text`` with remembered keys masked and ``scheme://user:pass@`` reduced to ``scheme://``."""
    return _USERINFO.sub(r"\1", errors.redact(text))


def safe_url(url: str) -> str:
    """``url`` fit to store or show: no ``user:password@``, no remembered key."""
    from urllib.parse import urlsplit, urlunsplit

    text = errors.redact(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return redact_text(text)
    if "@" not in parts.netloc:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def install() -> None:
    """Put the filter on the HTTP library's loggers, once per process."""
    global _installed
    with _installed_lock:
        if _installed:
            return
        for name in HTTP_LOGGERS:
            logging.getLogger(name).addFilter(RedactingFilter())
        _installed = True
