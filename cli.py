"""The `grok-imagine` command line (also `python -m comfyui_grok_imagine`).

It drives the same journal-backed runner as the ComfyUI nodes, so a task paid for here is never
paid for twice and its files are kept even after the result URLs expire.

Exit codes: 0 done, 2 bad usage or input, 3 API / network / download error, 4 timed out (the task
keeps running server-side and can be resumed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .api import errors, validation

if TYPE_CHECKING:
    from .api.client import GrokClient
    from .api.config import Settings
    from .api.task import Task
    from .journal import TaskResult, TaskRunner
    from .journal.db import JournalEntry
    from .journal.spend_limit import DailyLimit
    from .journal.store import JournalStore, SpendLedger

EXIT_OK, EXIT_USAGE, EXIT_API, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
DEFAULT_TIMEOUT = 600.0


class Progress:
    """One status line per task on stderr: rewritten in place on a terminal, a line per change
    otherwise (logs and CI stay readable)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._lock = threading.Lock()

    def update(self, label: str, task: Task, elapsed: float) -> None:
        from .journal.events import state_word

        pct = f" {task.progress:.0%}" if task.progress is not None else ""
        line = f"[{label}] task {task.id}: {state_word(task.state)}{pct} ({elapsed:.1f} s)"
        with self._lock:
            if self._tty:
                self._stream.write("\r\x1b[2K" + line)
            else:
                self._stream.write(line + "\n")
            self._stream.flush()

    def say(self, text: str) -> None:
        with self._lock:
            if self._tty:
                self._stream.write("\r\x1b[2K")
            self._stream.write(text + "\n")
            self._stream.flush()


# --- wiring ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _settings(args: argparse.Namespace) -> Iterator[Settings]:
    """The real API's settings, or those of an in-process sandbox started for this command."""
    from .api.config import load_settings

    if not getattr(args, "sandbox", False):
        yield load_settings()
        return
    import tempfile

    from .sandbox import Sandbox, SandboxConfig

    config = SandboxConfig()
    key = next(iter(config.keys))
    with Sandbox(config) as sb, tempfile.TemporaryDirectory(prefix="grok-sandbox-") as home:
        # Sandbox tasks vanish with the sandbox: keep them out of the real journal (and out of
        # a fleet's shared one, unless --journal-url asks for it).
        if not args.home:
            args.home = home
            args.private_journal = True
        print(
            f"Using an in-process sandbox at {sb.base_url} (no key, no credits).", file=sys.stderr
        )
        yield load_settings(environ={"APIINONE_API_KEY": key, "APIINONE_BASE_URL": sb.base_url})


_opened: list[JournalStore] = []


def _home(args: argparse.Namespace) -> Path:
    from .journal import default_home

    return Path(args.home) if getattr(args, "home", None) else default_home()


def _journal_target(args: argparse.Namespace) -> str | Path:
    """``--journal-url``, else ``GROK_IMAGINE_JOURNAL_URL``, else the home's journal file."""
    from .journal import journal_path
    from .journal.open import journal_url_from_env

    explicit = getattr(args, "journal_url", None)
    if explicit or getattr(args, "private_journal", False):
        return explicit or journal_path(_home(args))
    return journal_url_from_env() or journal_path(_home(args))


def _runner(settings: Settings, args: argparse.Namespace) -> TaskRunner:
    from .api.client import GrokClient
    from .journal import FileStore, TaskRunner, files_root, open_journal

    journal = open_journal(_journal_target(args))
    _opened.append(journal)  # closed by main(): a shared journal saves writes kept in an outage

    def client_factory() -> GrokClient:
        return GrokClient(settings)

    return TaskRunner(
        client_factory,
        journal,
        FileStore(files_root(_home(args))),
        api_base=settings.base_url,
        daily_limit=_daily_limit(),
    )


def _daily_limit() -> Callable[[], DailyLimit]:
    """The CLI's limit: GROK_IMAGINE_DAILY_CREDIT_LIMIT, else the settings file beside the key."""
    from .api import config
    from .journal.spend_limit import SETTINGS_FILE_NAME, read_daily_limit

    settings_file = config.resolve_key_file().with_name(SETTINGS_FILE_NAME)
    return lambda: read_daily_limit(settings_file)


def _hooks(progress: Progress, label: str) -> object:
    from .journal import RunHooks, events

    def on_event(event: events.RunEvent) -> None:
        if isinstance(event, events.TaskUpdated):
            progress.update(label, event.task, event.elapsed_s)
        elif not isinstance(event, events.FileKept):
            progress.say(events.describe(event))

    return RunHooks(on_event=on_event)


def _write_outputs(result: TaskResult, out_dir: Path) -> list[Path]:
    """Copy the kept files out as received (JPEG stays JPEG), named by task id and index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, src in enumerate(result.files):
        dest = out_dir / f"{result.task_id}_{index}{src.suffix}"
        shutil.copyfile(src, dest)
        written.append(dest)
    return written


def _report(result: TaskResult, out_dir: Path, progress: Progress, what: str) -> None:
    how = (
        "kept from the journal, no API call"
        if result.reused
        else ("resumed" if result.resumed else "done")
    )
    progress.say(f"{what} task {result.task_id}: {len(result.files)} image(s), {how}")
    for path in _write_outputs(result, out_dir):
        print(path)


# --- commands --------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    prompt = validation.validate_prompt(args.prompt)
    aspect = validation.validate_aspect_ratio(args.aspect_ratio) if args.aspect_ratio else None
    if not 1 <= args.tasks <= 8:
        raise errors.InvalidRequestError("--tasks must be between 1 and 8.", field="tasks")
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 2**31
    progress = Progress()
    out_dir = Path(args.output)
    with _settings(args) as settings:
        runner = _runner(settings, args)
        progress.say(
            f"Text-to-image x{args.tasks}, seed {seed} (the same seed again resumes or reuses "
            f"these tasks instead of paying again; 5 credits per new task)"
        )

        def one(index: int) -> TaskResult:
            return runner.text_to_image(
                prompt,
                aspect_ratio=aspect,
                seed=seed,
                index=index,
                timeout=args.timeout,
                hooks=_hooks(progress, f"t2i {index + 1}/{args.tasks}"),
            )

        requests = [
            runner.text_to_image_request(prompt, aspect, seed, i) for i in range(args.tasks)
        ]
        with runner.reserve(requests), ThreadPoolExecutor(max_workers=args.tasks) as pool:
            results = list(pool.map(one, range(args.tasks)))  # over the limit: none is sent
        for result in results:
            _report(result, out_dir, progress, "Text-to-image")
        if args.upscale:
            for result in results:
                up = runner.upscale(
                    result.task_id,
                    seed=seed,
                    timeout=args.timeout,
                    hooks=_hooks(progress, "upscale"),
                )
                _report(up, out_dir, progress, "Upscale")
    return EXIT_OK


def cmd_upscale(args: argparse.Namespace) -> int:
    task_id = validation.validate_task_id(args.task_id)
    progress = Progress()
    with _settings(args) as settings:
        runner = _runner(settings, args)
        progress.say(f"Upscaling task {task_id} (12 credits if a new task is needed)")
        try:
            result = runner.upscale(
                task_id, seed=args.seed, timeout=args.timeout, hooks=_hooks(progress, "upscale")
            )
        except errors.TaskNotFoundError as exc:
            if not args.sandbox:
                raise
            raise errors.TaskNotFoundError(
                f"{exc} An in-process --sandbox starts empty, so it knows no earlier task: run "
                "`grok-imagine generate PROMPT --sandbox --upscale`, or start `grok-imagine "
                "sandbox` once and point APIINONE_BASE_URL at it.",
                task_id=task_id,
            ) from None
        _report(result, Path(args.output), progress, "Upscale")
    return EXIT_OK


def cmd_task(args: argparse.Namespace) -> int:
    task_id = validation.validate_task_id(args.task_id)
    progress = Progress()
    with _settings(args) as settings:
        runner = _runner(settings, args)
        result = runner.load(task_id, timeout=args.timeout, hooks=_hooks(progress, "load"))
        _report(result, Path(args.output), progress, "Loaded")
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    from .journal import open_journal
    from .journal.store import SpendLedger

    target = _journal_target(args)
    if isinstance(target, Path) and not target.exists():
        print(f"No journal yet at {target}: no task has been run from this machine.")
        return EXIT_OK
    journal = open_journal(target, rate=None)
    _opened.append(journal)
    path = journal.where
    if args.task_id:
        entry = journal.get(validation.validate_task_id(args.task_id))
        if entry is None:
            print(f"Task {args.task_id} is not in the journal at {path}.", file=sys.stderr)
            return EXIT_USAGE
        _show_entry(entry)
        return EXIT_OK
    rows = journal.recent(args.limit)
    print(f"{'updated':19}  {'task id':24}  {'state':10}  {'cr':>3}  {'files':>5}  prompt")
    for e in rows:
        prompt = (e.prompt or f"(upscale of {e.source_task_id})").replace("\n", " ")
        updated = _when(e.updated_at)
        print(
            f"{updated:19}  {e.task_id or '-':24}  {e.state:10}  {e.credits:>3}  "
            f"{len(e.files):>5}  {prompt[:48]}"
        )
    if isinstance(journal, SpendLedger):
        _print_spend(journal)
        _print_uncertain(journal)
    return EXIT_OK


def _print_spend(journal: SpendLedger) -> None:
    """Today's and this month's credits from the journal's ledger, and the limit in force."""
    from .journal.spend_limit import SpendLimitConfigError, day_start, month_start

    now = time.time()
    try:
        limit = _daily_limit()()
        of = f" of a {limit.credits}-credit daily limit" if limit.credits is not None else ""
    except SpendLimitConfigError as exc:
        of = f" (daily limit unreadable: {exc})"
    print(
        f"Spent today: {journal.spent(day_start(now))} credits{of}; "
        f"this month: {journal.spent(month_start(now))} credits."
    )


def _print_uncertain(journal: SpendLedger) -> None:
    for entry in journal.uncertain():
        print(
            f"Uncertain create, row {entry.id} ({_when(entry.created_at)}, {entry.credits} "
            f"credits): find its task id in the API in One dashboard, then `grok-imagine resolve "
            f"{entry.id} --task-id ID` (free), or `grok-imagine resolve {entry.id} --not-created`."
        )


def cmd_resolve(args: argparse.Namespace) -> int:
    """Settle an uncertain create: the task id found in the dashboard, or "not created"."""
    task_id = None if args.not_created else validation.validate_task_id(args.task_id)
    progress = Progress()
    with _settings(args) as settings:
        runner = _runner(settings, args)
        result = runner.resolve(
            args.entry, task_id, timeout=args.timeout, hooks=_hooks(progress, "resolve")
        )
        if result is None:
            print(f"Row {args.entry} marked as not created (0 credits).")
        else:
            _report(result, Path(args.output), progress, "Resolved")
    return EXIT_OK


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _show_entry(entry: JournalEntry) -> None:
    rows = {
        "task id": entry.task_id or "-",
        "state": entry.state,
        "model": entry.model or "-",
        "prompt": entry.prompt or "-",
        "aspect ratio": entry.aspect_ratio or "provider default",
        "seed / index": f"{entry.seed} / {entry.index}",
        "source task": entry.source_task_id or "-",
        "credits": entry.credits,
        "error": entry.error or "-",
        "created": _when(entry.created_at),
        "finished": _when(entry.finished_at),
    }
    for name, value in rows.items():
        print(f"{name:>13}: {value}")
    for file in entry.files:
        print(f"{'file':>13}: {file.path}")


def cmd_sandbox(args: argparse.Namespace) -> int:
    import logging

    from .sandbox import Sandbox
    from .sandbox.cli_args import config_from_args

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config, faults = config_from_args(args)
    sb = Sandbox(config, faults).start()
    key = next(iter(config.keys))
    print("Grok Imagine sandbox running (Ctrl-C to stop). Point the nodes or the CLI at it with:")
    print(f"  APIINONE_BASE_URL={sb.base_url} APIINONE_API_KEY={key}", flush=True)
    sb.serve_forever()
    return EXIT_OK


def cmd_key(args: argparse.Namespace) -> int:
    from .api import config

    path = config.resolve_key_file()
    if args.action == "set":
        import getpass

        key = sys.stdin.readline() if not sys.stdin.isatty() else getpass.getpass("API key: ")
        config.write_key_file(path, key)
        print(f"Key saved to {path} (mode 0600).")
    elif args.action == "clear":
        path.unlink(missing_ok=True)
        print(f"Removed {path}.")
    else:
        try:
            settings = config.load_settings()
        except errors.MissingKeyError as exc:
            print(exc)
            return EXIT_USAGE
        print(
            f"Key set ({settings.masked_key}) from {settings.key_source}; "
            f"API at {settings.base_url}."
        )
    return EXIT_OK


# --- argument parsing ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grok-imagine",
        description="Grok Imagine (via API in One) from the command line: generate, upscale, "
        "recover paid tasks, and serve a local sandbox.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_journal_url(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--journal-url",
            metavar="URL",
            help="a shared journal for a fleet of workers: postgresql://user:password@host/db "
            "(default: $GROK_IMAGINE_JOURNAL_URL, else the journal file in --home)",
        )

    def add_common(p: argparse.ArgumentParser, *, sandbox: bool = True) -> None:
        p.add_argument(
            "-o",
            "--output",
            default="grok-output",
            help="folder for the image files (default: grok-output)",
        )
        p.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help="seconds to wait for the task (default: 600)",
        )
        p.add_argument(
            "--home",
            help="journal/files folder (default: $GROK_IMAGINE_HOME or the user data folder)",
        )
        add_journal_url(p)
        if sandbox:
            p.add_argument(
                "--sandbox",
                action="store_true",
                help="use an in-process local sandbox: no key, no credits",
            )

    g = sub.add_parser("generate", help="text-to-image (5 credits per task)")
    g.add_argument("prompt")
    g.add_argument(
        "--aspect-ratio", choices=validation.ASPECT_RATIOS, help="default: the provider's"
    )
    g.add_argument("--tasks", type=int, default=1, help="tasks to run in parallel, 1-8")
    g.add_argument(
        "--seed",
        type=int,
        help="request identity; the same seed resumes or reuses "
        "an earlier paid task instead of paying again (default: new)",
    )
    g.add_argument("--upscale", action="store_true", help="then upscale each task (12 credits)")
    add_common(g)
    g.set_defaults(func=cmd_generate)

    u = sub.add_parser("upscale", help="upscale a text-to-image task by its id (12 credits)")
    u.add_argument("task_id")
    u.add_argument("--seed", type=int, default=0, help="request identity (default: 0)")
    add_common(u)
    u.set_defaults(func=cmd_upscale)

    t = sub.add_parser("task", help="fetch the results of an existing task (free)")
    t.add_argument("task_id")
    add_common(t)
    t.set_defaults(func=cmd_task)

    j = sub.add_parser("tasks", help="list the journal of paid tasks, or show one")
    j.add_argument("task_id", nargs="?")
    j.add_argument("--limit", type=int, default=20)
    j.add_argument("--home")
    add_journal_url(j)
    j.set_defaults(func=cmd_tasks)

    r = sub.add_parser(
        "resolve", help="settle an uncertain create: its task id from the dashboard, or none"
    )
    r.add_argument("entry", type=int, help="the journal row (`grok-imagine tasks` lists them)")
    how = r.add_mutually_exclusive_group(required=True)
    how.add_argument("--task-id", help="the task id found in the API in One dashboard (free)")
    how.add_argument(
        "--not-created", action="store_true", help="no task was made: 0 credits, create anew"
    )
    add_common(r)
    r.set_defaults(func=cmd_resolve)

    s = sub.add_parser("sandbox", help="serve the local stand-in API on 127.0.0.1")
    from .sandbox.cli_args import add_arguments

    add_arguments(s)
    s.set_defaults(func=cmd_sandbox)

    k = sub.add_parser("key", help="store, check or remove the API key file")
    k.add_argument("action", choices=("status", "set", "clear"), nargs="?", default="status")
    k.set_defaults(func=cmd_key)
    return parser


def _exit_code(exc: errors.GrokError) -> int:
    if isinstance(exc, errors.TaskTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, (errors.InvalidRequestError, errors.MissingKeyError)) and not getattr(
        exc, "from_server", False
    ):
        return EXIT_USAGE
    return EXIT_API


def main(argv: list[str] | None = None, *, run: Callable[..., int] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return (run or args.func)(args)
    except errors.GrokError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: any task already created keeps running server-side; "
            "`grok-imagine tasks` lists it and `grok-imagine task ID` fetches it.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        while _opened:
            _opened.pop().close()
