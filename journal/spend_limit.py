"""The daily credit limit: where it comes from, which day it counts, and the refusal.

The limit is read from ``GROK_IMAGINE_DAILY_CREDIT_LIMIT`` (headless and CLI use; it wins) or from
the pack's small settings file beside the key file (Settings > Grok Imagine writes it; the key is
never in it). Unset means no limit. A value that cannot be read refuses paid work (fail closed):
a typo must not silently lift the user's cap. "Daily" is the machine's local calendar day.

The runner enforces it from the journal's own ledger (``Journal.spent``/``Journal.reserve``),
under the same database write lock that claims a create, so it holds across threads and processes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..api import errors
from ..api.env import DAILY_LIMIT_ENV
from ..api.messages import Message, said
from ..api.what import What

SETTINGS_FILE_NAME = "settings.json"
"""The pack's non-secret settings, beside the key file (never the key file itself)."""
DAILY_LIMIT_KEY = "daily_credit_limit"
MAX_DAILY_LIMIT = 10_000_000
MAX_SETTINGS_BYTES = 64 * 1024


@dataclass(frozen=True)
class DailyLimit:
    """``credits`` None means no limit; ``source`` says who set it ("env", "settings" or None),
    ``where`` the settings file it came from."""

    credits: int | None
    source: str | None = None
    where: Path | None = None


NO_LIMIT = DailyLimit(None)


class SpendLimitConfigError(errors.GrokError):
    """The limit is set but unreadable: paid work is refused until it is fixed."""


class SpendLimitError(errors.GrokError):
    """This run would take today's spending over the daily limit; nothing was sent."""

    def __init__(self, spent: int, limit: DailyLimit, need: int) -> None:
        self.spent = spent
        self.limit = limit.credits or 0
        self.need = need
        self.limit_source = limit.source
        self.limit_file = str(limit.where) if limit.where is not None else None
        super().__init__(
            said(What.SPEND_LIMIT, spent=spent, limit=self.limit, need=need),
            advice=errors.Advice.RAISE_LIMIT,
        )


def parse_limit(raw: object, where: Message | str) -> int | None:
    """A limit value as typed by the user (env text, JSON number) -> credits, or None for unset."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise SpendLimitConfigError(said(What.LIMIT_NOT_WHOLE, where=where, value=repr(raw)))
    try:
        value = int(raw.strip()) if isinstance(raw, str) else raw
    except ValueError:
        value = None
    if not isinstance(value, int) or not 0 <= value <= MAX_DAILY_LIMIT:
        raise SpendLimitConfigError(
            said(What.LIMIT_OUT_OF_RANGE, where=where, most=MAX_DAILY_LIMIT)
        )
    return value


def read_settings_file(path: Path) -> dict[str, object]:
    """The settings file's JSON object ({} when there is no file)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SpendLimitConfigError(
            said(What.SETTINGS_UNREADABLE, path=str(path), reason=str(exc.strerror))
        ) from None
    try:
        payload = json.loads(data.decode("utf-8")) if len(data) <= MAX_SETTINGS_BYTES else None
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict):
        raise SpendLimitConfigError(
            said(What.SETTINGS_DAMAGED, path=str(path)), advice=errors.Advice.SAVE_LIMIT
        )
    return payload


def write_daily_limit(path: Path, credits: int | None) -> None:
    """Store the limit (None removes it) in the settings file, atomically, other keys kept."""
    try:
        settings = read_settings_file(path)
    except SpendLimitConfigError:
        settings = {}  # a damaged file is replaced by the value the user just chose
    if credits is None:
        settings.pop(DAILY_LIMIT_KEY, None)
    else:
        settings[DAILY_LIMIT_KEY] = int(credits)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # concurrent saves apart
    try:
        partial.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def read_daily_limit(
    settings_file: Path | None, environ: Mapping[str, str] = os.environ
) -> DailyLimit:
    """The limit in force: the environment variable wins, then the settings file."""
    env_value = environ.get(DAILY_LIMIT_ENV, "")
    if env_value.strip():
        return DailyLimit(parse_limit(env_value, DAILY_LIMIT_ENV), "env")
    if settings_file is None:
        return NO_LIMIT
    stored = read_settings_file(settings_file).get(DAILY_LIMIT_KEY)
    credits = parse_limit(stored, said(What.LIMIT_IN_FILE, path=str(settings_file)))
    return NO_LIMIT if credits is None else DailyLimit(credits, "settings", settings_file)


def day_start(now: float) -> float:
    """Local midnight that began the calendar day of ``now`` (DST-aware, via the C library)."""
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))


def month_start(now: float) -> float:
    """Local midnight of the first day of ``now``'s month."""
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, 1, 0, 0, 0, 0, 0, -1))
