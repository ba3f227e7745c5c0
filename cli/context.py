"""One command's run: its arguments, the command that repeats it, and what it opened.

The API settings (the real API, or an in-process sandbox started for this command), the
journal-backed runner on ``--home`` / ``--journal-url``, and the journals to close at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..api.env import BASE_URL_ENV, KEY_ENV
from ..api.task import DEFAULT_TASK_TIMEOUT_S
from ..journal import paths
from .progress import Progress
from .stop import StopSignal

if TYPE_CHECKING:
    from ..api.client import GrokClient
    from ..api.config import Settings
    from ..journal import TaskRunner
    from ..journal.spend_limit import DailyLimit
    from ..journal.store import JournalStore

PROG = "grok-imagine"
SANDBOX_WAIT_S = 20
"""The shortest wait to suggest on the in-process sandbox, whose tasks take 3-10 s."""
REPEATABLE = ("generate", "upscale", "task", "resolve")
"""The commands whose exact command line picks the work up again."""


@dataclass
class Context:
    """One command's run: its argv (for the re-run command), stop flag, progress, journals."""

    args: argparse.Namespace
    argv: Sequence[str]
    stop: StopSignal = field(default_factory=StopSignal)
    progress: Progress = field(default_factory=Progress)
    seed: int | None = None
    sandbox_url: str | None = None
    """The in-process sandbox's address while one runs for this command."""
    opened: list[JournalStore] = field(default_factory=list)

    @property
    def repeatable(self) -> bool:
        return self.args.command in REPEATABLE

    @property
    def on_sandbox(self) -> bool:
        return bool(getattr(self.args, "sandbox", False))

    def rerun(self, *, longer_wait: bool = False) -> str:
        """The exact command that repeats this request (``--new`` pinned to the seed it drew);
        ``longer_wait``: with twice the ``--timeout`` that just ran out."""
        argv = list(self.argv)
        if "--new" in argv and self.seed is not None:
            argv[argv.index("--new") : argv.index("--new") + 1] = ["--seed", str(self.seed)]
        if longer_wait:
            floor = SANDBOX_WAIT_S if self.on_sandbox else 0
            argv = _with_timeout(argv, _longer(getattr(self.args, "timeout", None), floor))
        return shlex.join([PROG, *argv])

    # -- what the command opens ----------------------------------------------------------------

    @contextlib.contextmanager
    def settings(self) -> Iterator[Settings]:
        """The real API's settings, or those of an in-process sandbox started for this command."""
        from ..api.config import load_settings

        if not self.on_sandbox:
            yield load_settings()
            return
        import tempfile

        from ..sandbox import Sandbox, SandboxConfig

        config = SandboxConfig()
        key = next(iter(config.keys))
        with Sandbox(config) as sb, tempfile.TemporaryDirectory(prefix="grok-sandbox-") as home:
            # Sandbox tasks vanish with the sandbox: keep them out of the real journal (and out
            # of a fleet's shared one, unless --journal-url asks for it).
            if not self.args.home:
                self.args.home = home
                self.args.private_journal = True
            self.sandbox_url = sb.base_url
            self.progress.say(
                f"Using an in-process sandbox at {sb.base_url}: no key needed, and its credits "
                "are play money."
            )
            try:
                yield load_settings(environ={KEY_ENV: key, BASE_URL_ENV: sb.base_url})
            finally:
                self.sandbox_url = None

    def home(self) -> Path:
        home = getattr(self.args, "home", None)
        return Path(home) if home else paths.default_home()

    def journal_target(self) -> str | Path:
        """``--journal-url``, else ``GROK_IMAGINE_JOURNAL_URL``, else the home's journal file."""
        from ..journal.open import checked_journal_url, journal_url_from_env

        explicit = getattr(self.args, "journal_url", None)
        if explicit:
            return checked_journal_url(explicit, "--journal-url")
        if getattr(self.args, "private_journal", False):
            return paths.journal_path(self.home())
        return journal_url_from_env() or paths.journal_path(self.home())

    def open_journal(self, target: str | Path, *, paced: bool = True) -> JournalStore:
        """The journal at ``target``; ``paced``: a shared one paces creates (not to list)."""
        from ..journal import open_journal

        journal = open_journal(target) if paced else open_journal(target, rate=None)
        self.opened.append(journal)  # closed at the end: a shared journal saves writes kept
        return journal

    def runner(self, settings: Settings) -> TaskRunner:
        from ..api.client import GrokClient
        from ..journal import FileStore, TaskRunner

        journal = self.open_journal(self.journal_target())

        def client_factory() -> GrokClient:
            return GrokClient(settings)

        return TaskRunner(
            client_factory,
            journal,
            FileStore(paths.files_root(self.home())),
            api_base=settings.base_url,
            daily_limit=daily_limit(),
        )

    def close_journals(self, wait_s: float | None = None) -> None:
        """Close what this command opened; on a stop, give up after ``wait_s`` (a shared
        journal's closing write must not hold Ctrl-C; its rows are safe, they wait for the next
        run)."""

        def close() -> None:
            while self.opened:
                with contextlib.suppress(Exception):
                    self.opened.pop().close()

        if wait_s is None:
            close()
            return
        closer = threading.Thread(target=close, name="grok-cli-close", daemon=True)
        closer.start()
        closer.join(wait_s)


def daily_limit() -> Callable[[], DailyLimit]:
    """The CLI's limit: GROK_IMAGINE_DAILY_CREDIT_LIMIT, else the settings file beside the key."""
    from ..api import config
    from ..journal.spend_limit import SETTINGS_FILE_NAME, read_daily_limit

    settings_file = config.resolve_key_file().with_name(SETTINGS_FILE_NAME)
    return lambda: read_daily_limit(settings_file)


def _longer(timeout: float | None, floor: float = 0) -> int:
    """A wait longer than the one that ran out: twice it, in whole seconds (at least ``floor``)."""
    ran_out = timeout if timeout is not None else DEFAULT_TASK_TIMEOUT_S
    return max(1, math.ceil(2 * ran_out), math.ceil(floor))


def _with_timeout(argv: list[str], seconds: int) -> list[str]:
    """``argv`` with its ``--timeout`` (either spelling) set to ``seconds``, added if absent."""
    out: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--timeout":
            skip = True
        elif not word.startswith("--timeout="):
            out.append(word)
    return [*out, "--timeout", str(seconds)]
