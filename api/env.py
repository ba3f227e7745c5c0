"""Every environment variable the pack reads, each name defined once.

In ``api/`` (the lowest layer) so that the advice, the key, the journal, the nodes and the CLI
can all name a variable without importing one another. Standard library only, nothing else.
"""

from __future__ import annotations

KEY_ENV = "APIINONE_API_KEY"
"""The API in One key; wins over the key file."""
BASE_URL_ENV = "APIINONE_BASE_URL"
"""Another API address (the sandbox's, for instance)."""
KEY_FILE_ENV = "GROK_IMAGINE_KEY_FILE"
"""Where the key file is, outside ComfyUI."""
DAILY_LIMIT_ENV = "GROK_IMAGINE_DAILY_CREDIT_LIMIT"
"""The daily credit limit; wins over the settings file."""
HOME_ENV = "GROK_IMAGINE_HOME"
"""Where the CLI (and scripts) keep the journal and the kept files."""
JOURNAL_URL_ENV = "GROK_IMAGINE_JOURNAL_URL"
"""A fleet's shared PostgreSQL journal."""
CREATE_RATE_ENV = "GROK_IMAGINE_CREATE_RATE"
"""How many creates per how many seconds the account allows (``20/10``), or ``off``."""
POLL_SCALE_ENV = "GROK_IMAGINE_POLL_SCALE"
"""Scales the polling delays; for the sandbox only."""
