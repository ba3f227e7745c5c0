"""The `grok-imagine` command line (also `python -m comfyui_grok_imagine`).

It drives the same journal-backed runner as the ComfyUI nodes and tells the same story: the
seed is the re-run switch (default 0), so running the same command again resumes or reuses the
task already paid for, and only ``--new`` or another ``--seed`` pays for new images. Ctrl-C and
SIGTERM stop any command within a second and print the command that picks the work up again.
Every error is one line whose advice names CLI commands (``api.advice``, ``Surface.CLI``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .api import errors, validation
from .api.advice import Surface
from .api.env import (
    BASE_URL_ENV,
    DAILY_LIMIT_ENV,
    HOME_ENV,
    JOURNAL_URL_ENV,
    KEY_ENV,
    KEY_FILE_ENV,
    POLL_SCALE_ENV,
)
from .api.models import TEXT_TO_IMAGE_CREDITS, UPSCALE_CREDITS
from .api.task import DEFAULT_TASK_TIMEOUT_S
from .journal import events, paths

if TYPE_CHECKING:
    from .api.client import GrokClient
    from .api.config import Settings
    from .journal import RunHooks, TaskResult, TaskRunner
    from .journal.model import JournalEntry
    from .journal.spend_limit import DailyLimit
    from .journal.store import JournalStore, SpendLedger

PROG = "grok-imagine"
EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_API, EXIT_TIMEOUT = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_PIPE = 130, 141
EXIT_CODES = (
    (EXIT_OK, "done"),
    (EXIT_INTERNAL, "unexpected error (a bug: please report it)"),
    (EXIT_USAGE, "bad usage or input (nothing was paid)"),
    (EXIT_API, "API, network or download error"),
    (EXIT_TIMEOUT, "timed out (the task keeps running; the same command resumes it)"),
    (EXIT_INTERRUPTED, "interrupted by Ctrl-C or SIGTERM (the same command resumes)"),
    (EXIT_PIPE, "the output pipe was closed (e.g. `| head`)"),
)
DEFAULT_SEED = 0
"""The nodes' seed default too: the same command with the same inputs is the same request."""
SEED_MAX = 2**31 - 1
STOP_GRACE_S = 0.5
"""After Ctrl-C, how long the work may take to stop on its own (waits stop within 0.25 s; a
create just answered gets its task id recorded) before the process leaves regardless."""
WATCH_S = 0.05
_PENDING = object()


# --- stopping on Ctrl-C / SIGTERM ------------------------------------------------------------


class Interrupted(Exception):
    """The user asked the run to stop (Ctrl-C, SIGTERM, SIGHUP)."""


class StopSignal:
    """Turns SIGINT / SIGTERM / SIGHUP into a flag the runner's waits poll (``should_cancel``).

    A second signal leaves at once. Installed only around commands that run tasks, so prompts
    (``key set``) keep Python's ordinary Ctrl-C.
    """

    SIGNALS = tuple(
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
    )

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, object] = {}

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            _hard_exit(EXIT_INTERRUPTED)
        self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignal]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # in-process callers on other threads: only the flag
            return
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)  # type: ignore[arg-type]


def _hard_exit(code: int) -> NoReturn:
    """Leave now: worker threads still blocked on the network must not hold the exit."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# --- what each task did, for progress, the last line and the interrupt message --------------


@dataclass
class TaskTrack:
    label: str
    task_id: str | None = None
    created_credits: int | None = None
    """Set when this run's create was answered (the task is paid for by this run)."""
    progress: float = 0.0
    word: str | None = None
    done: bool = False


class Progress:
    """One status line per task on stderr, drawn from the runner's typed events: rewritten in
    place on a terminal, a line per change otherwise (logs and CI stay readable)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._lock = threading.Lock()
        self.tracks: list[TaskTrack] = []

    def track(self, label: str) -> TaskTrack:
        with self._lock:
            track = TaskTrack(label)
            self.tracks.append(track)
            return track

    def hooks(self, track: TaskTrack, stop: StopSignal) -> RunHooks:
        from .journal import RunHooks

        def on_event(event: events.RunEvent) -> None:
            task_id = getattr(event, "task_id", None)
            if isinstance(task_id, str):
                track.task_id = task_id
            if isinstance(event, events.TaskCreated):
                track.created_credits = event.credits
            if isinstance(event, events.FileKept):
                return
            if isinstance(event, events.TaskUpdated):
                track.task_id = event.task.id or track.task_id
                # Percentages never go backwards, whatever a status read says.
                progress = event.task.progress
                if progress is not None:
                    track.progress = max(track.progress, progress)
                    event = replace(event, task=replace(event.task, progress=track.progress))
                word = events.state_word(event.task.state)
                if self._tty or word != track.word:  # a log gets a line per state, not per %
                    track.word = word
                    self._draw(f"[{track.label}] {events.describe(event)}", transient=True)
                return
            self.say(f"[{track.label}] {events.describe(event)}")

        return RunHooks(on_event=on_event, should_cancel=stop.is_set)

    def _draw(self, line: str, transient: bool) -> None:
        with self._lock:
            if self._tty:
                self._stream.write("\r\x1b[2K" + line + ("" if transient else "\n"))
            else:
                self._stream.write(line + "\n")
            self._stream.flush()

    def say(self, text: str) -> None:
        self._draw(text, transient=False)


# --- wiring ----------------------------------------------------------------------------------


@dataclass
class Context:
    """One command's run: its argv (for the re-run command), stop flag and progress."""

    args: argparse.Namespace
    argv: Sequence[str]
    stop: StopSignal = field(default_factory=StopSignal)
    progress: Progress = field(default_factory=Progress)
    seed: int | None = None

    def rerun(self) -> str:
        """The exact command that repeats this request (``--new`` pinned to the seed it drew)."""
        argv = list(self.argv)
        if "--new" in argv and self.seed is not None:
            argv[argv.index("--new") : argv.index("--new") + 1] = ["--seed", str(self.seed)]
        return shlex.join([PROG, *argv])


@contextlib.contextmanager
def _settings(ctx: Context) -> Iterator[Settings]:
    """The real API's settings, or those of an in-process sandbox started for this command."""
    from .api.config import load_settings

    args = ctx.args
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
        ctx.progress.say(f"Using an in-process sandbox at {sb.base_url} (no key, no credits).")
        yield load_settings(environ={KEY_ENV: key, BASE_URL_ENV: sb.base_url})


_opened: list[JournalStore] = []


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if getattr(args, "home", None) else paths.default_home()


def _journal_target(args: argparse.Namespace) -> str | Path:
    """``--journal-url``, else ``GROK_IMAGINE_JOURNAL_URL``, else the home's journal file."""
    from .journal.open import checked_journal_url, journal_url_from_env

    explicit = getattr(args, "journal_url", None)
    if explicit:
        return checked_journal_url(explicit, "--journal-url")
    if getattr(args, "private_journal", False):
        return paths.journal_path(_home(args))
    return journal_url_from_env() or paths.journal_path(_home(args))


def _runner(settings: Settings, args: argparse.Namespace) -> TaskRunner:
    from .api.client import GrokClient
    from .journal import FileStore, TaskRunner, open_journal

    journal = open_journal(_journal_target(args))
    _opened.append(journal)  # closed by main(): a shared journal saves writes kept in an outage

    def client_factory() -> GrokClient:
        return GrokClient(settings)

    return TaskRunner(
        client_factory,
        journal,
        FileStore(paths.files_root(_home(args))),
        api_base=settings.base_url,
        daily_limit=_daily_limit(),
    )


def _daily_limit() -> Callable[[], DailyLimit]:
    """The CLI's limit: GROK_IMAGINE_DAILY_CREDIT_LIMIT, else the settings file beside the key."""
    from .api import config
    from .journal.spend_limit import SETTINGS_FILE_NAME, read_daily_limit

    settings_file = config.resolve_key_file().with_name(SETTINGS_FILE_NAME)
    return lambda: read_daily_limit(settings_file)


def _close_journals(wait_s: float | None = None) -> None:
    """Close what this command opened; on a stop, give up after ``wait_s`` (a shared journal's
    closing write must not hold Ctrl-C; its rows are safe, they just wait for the next run)."""

    def close() -> None:
        while _opened:
            with contextlib.suppress(Exception):
                _opened.pop().close()

    if wait_s is None:
        close()
        return
    closer = threading.Thread(target=close, name="grok-cli-close", daemon=True)
    closer.start()
    closer.join(wait_s)


def _output_dir(text: str) -> Path:
    """The output folder, created and proven writable before anything is paid for."""
    out = Path(text).expanduser()
    if out.exists() and not out.is_dir():
        raise errors.InvalidRequestError(
            f"The output path {out} is a file, not a folder: name a folder with -o.",
            field="output",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".grok-imagine-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise errors.InvalidRequestError(
            f"The output folder {out} cannot be written ({reason}): pick another with -o. "
            "Nothing was paid.",
            field="output",
        ) from None
    return out


def _write_outputs(result: TaskResult, out_dir: Path) -> list[Path]:
    """Copy the images out as received (JPEG stays JPEG), named by task id and index: the kept
    files, and those that arrived but could not be kept (written from memory)."""
    from .api.download import sniff_image_format

    written = []
    for index, src in enumerate(result.images):
        if isinstance(src, Path):
            dest = out_dir / f"{result.task_id}_{index}{src.suffix}"
        else:
            kind = (sniff_image_format(src) or "bin").lower().replace("jpeg", "jpg")
            dest = out_dir / f"{result.task_id}_{index}.{kind}"
        try:
            if isinstance(src, Path):
                shutil.copyfile(src, dest)
            else:
                dest.write_bytes(src)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            kept = f"the image is kept at {src}" if isinstance(src, Path) else "it was not kept"
            raise errors.DownloadError(
                f"Could not write {dest} ({reason}); {kept}, and "
                f"`{PROG} task {result.task_id} -o DIR` writes it again (free).",
                advice=errors.Advice.NONE,
            ) from None
        written.append(dest)
    return written


def _report(ctx: Context, result: TaskResult, what: str, out_dir: Path) -> None:
    count = len(result.images)
    ctx.progress.say(
        f"{what} task {result.task_id}: {count} image{'s' if count != 1 else ''}, "
        f"{events.outcome_word(result)}"
    )
    for path in _write_outputs(result, out_dir):
        print(path, flush=True)


def _summary(results: Sequence[TaskResult], loaded: bool = False) -> str:
    """The last line of every run: what was new, resumed or reused, and what it cost."""
    if loaded:
        return f"Done: {len(results)} task(s) loaded by id (free)."
    return f"Done: {events.outcomes_summary(results)}."


def _run_all(
    ctx: Context, labels: Sequence[str], work: Callable[[int, RunHooks], Any]
) -> list[Any]:
    """``work(i, hooks)`` for every label on worker threads; the main thread watches for Ctrl-C.

    Every task runs to its end even when another fails (each may be paid for already). On a stop
    the workers get ``STOP_GRACE_S`` to stop; then ``Interrupted`` is raised regardless.
    """
    tracks = [ctx.progress.track(label) for label in labels]
    outcomes: list[Any] = [_PENDING] * len(labels)

    def run(index: int) -> None:
        try:
            outcomes[index] = work(index, ctx.progress.hooks(tracks[index], ctx.stop))
        except BaseException as exc:
            outcomes[index] = exc
        finally:
            tracks[index].done = not isinstance(outcomes[index], BaseException)

    threads = [
        threading.Thread(target=run, args=(i,), name=f"grok-cli-task-{i}", daemon=True)
        for i in range(len(labels))
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if ctx.stop.event.wait(WATCH_S):
            deadline = time.monotonic() + STOP_GRACE_S
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            raise Interrupted
    if ctx.stop.is_set():
        raise Interrupted
    return outcomes


def _results(ctx: Context, outcomes: Sequence[TaskResult | BaseException]) -> list[TaskResult]:
    """The successes; each failure as one line; the first failure raised when none succeeded."""
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures[: -1 if not results else None]:
        ctx.progress.say(f"error: {_error_line(failure, ctx)}")
    if failures and not results:
        raise failures[-1]  # the last line, with its exit code
    return results


# --- commands --------------------------------------------------------------------------------


def _seed(ctx: Context) -> int:
    args = ctx.args
    if args.new:
        ctx.seed = random.SystemRandom().randint(1, SEED_MAX)
        ctx.progress.say(f"--new: seed {ctx.seed} (`{ctx.rerun()}` repeats this request)")
        return ctx.seed
    return args.seed if args.seed is not None else DEFAULT_SEED


def cmd_generate(ctx: Context) -> int:
    args = ctx.args
    prompt = validation.validate_prompt(args.prompt)
    aspect = validation.validate_aspect_ratio(args.aspect_ratio) if args.aspect_ratio else None
    out_dir = _output_dir(args.output)
    with _settings(ctx) as settings:
        runner = _runner(settings, args)
        ctx.seed = seed = _seed(ctx)
        ctx.progress.say(
            f"Text-to-image x{args.tasks}, seed {seed}: the same command again resumes or reuses "
            f"these tasks; --new pays for new ones ({TEXT_TO_IMAGE_CREDITS} credits per new task)."
        )
        labels = [f"t2i {i + 1}/{args.tasks}" for i in range(args.tasks)]
        requests = [
            runner.text_to_image_request(prompt, aspect, seed, i) for i in range(args.tasks)
        ]
        with runner.reserve(requests):  # over the daily limit: refused whole, none is sent
            outcomes = _run_all(
                ctx,
                labels,
                lambda i, hooks: runner.text_to_image(
                    prompt,
                    aspect_ratio=aspect,
                    seed=seed,
                    index=i,
                    timeout=args.timeout,
                    hooks=hooks,
                ),
            )
        results = _results(ctx, outcomes)
        for result in results:
            _report(ctx, result, "Text-to-image", out_dir)
        done = list(results)
        if args.upscale:
            ups = _results(
                ctx,
                _run_all(
                    ctx,
                    [f"upscale {i + 1}/{len(results)}" for i in range(len(results))],
                    lambda i, hooks: runner.upscale(
                        results[i].task_id, seed=seed, timeout=args.timeout, hooks=hooks
                    ),
                ),
            )
            for up in ups:
                _report(ctx, up, "Upscale", out_dir)
            done += ups
    ctx.progress.say(_summary(done))
    return EXIT_OK if len(outcomes) == len(results) else EXIT_API


def cmd_upscale(ctx: Context) -> int:
    args = ctx.args
    task_id = validation.validate_task_id(args.task_id)
    if args.sandbox:
        raise _empty_sandbox("upscale")
    out_dir = _output_dir(args.output)
    with _settings(ctx) as settings:
        runner = _runner(settings, args)
        ctx.seed = seed = _seed(ctx)
        ctx.progress.say(
            f"Upscaling task {task_id}, seed {seed} ({UPSCALE_CREDITS} credits if a new task is "
            "needed; the same command again resumes or reuses it)."
        )
        (outcome,) = _run_all(
            ctx,
            ["upscale"],
            lambda i, hooks: runner.upscale(task_id, seed=seed, timeout=args.timeout, hooks=hooks),
        )
        (result,) = _results(ctx, [outcome])
        _report(ctx, result, "Upscale", out_dir)
    ctx.progress.say(_summary([result]))
    return EXIT_OK


def cmd_task(ctx: Context) -> int:
    args = ctx.args
    task_id = validation.validate_task_id(args.task_id)
    if args.sandbox:
        raise _empty_sandbox("task")
    out_dir = _output_dir(args.output)
    with _settings(ctx) as settings:
        runner = _runner(settings, args)
        (outcome,) = _run_all(
            ctx,
            ["load"],
            lambda i, hooks: runner.load(task_id, timeout=args.timeout, hooks=hooks),
        )
        (result,) = _results(ctx, [outcome])
        _report(ctx, result, "Loaded", out_dir)
    ctx.progress.say(_summary([result], loaded=True))
    return EXIT_OK


def _empty_sandbox(command: str) -> errors.GrokError:
    return errors.InvalidRequestError(
        f"`{PROG} {command} --sandbox` cannot find any task: the in-process sandbox starts empty "
        f"for every command, so it knows no earlier task. Run `{PROG} generate PROMPT --sandbox "
        f"--upscale`, or start `{PROG} sandbox` once and point {BASE_URL_ENV} and {KEY_ENV} at it.",
        field="sandbox",
    )


def cmd_tasks(ctx: Context) -> int:
    from .journal import open_journal
    from .journal.store import SpendLedger

    args = ctx.args
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
            raise errors.InvalidRequestError(
                f"Task {args.task_id} is not in the journal at {path}: `{PROG} tasks` lists the "
                f"tasks it knows; `{PROG} task {args.task_id}` fetches any task of yours by id.",
                field="task_id",
            )
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
            f"credits): find its task id in the API in One dashboard, then `{PROG} resolve "
            f"{entry.id} --task-id ID` (free), or `{PROG} resolve {entry.id} --not-created`."
        )


def cmd_resolve(ctx: Context) -> int:
    """Settle an uncertain create: the task id found in the dashboard, or "not created"."""
    args = ctx.args
    task_id = None if args.not_created else validation.validate_task_id(args.task_id)
    out_dir = _output_dir(args.output)
    with _settings(ctx) as settings:
        runner = _runner(settings, args)
        (outcome,) = _run_all(
            ctx,
            ["resolve"],
            lambda i, hooks: runner.resolve(args.entry, task_id, timeout=args.timeout, hooks=hooks),
        )
        if outcome is None:
            print(f"Row {args.entry} marked as not created (0 credits).")
            return EXIT_OK
        (result,) = _results(ctx, [outcome])
        _report(ctx, result, "Resolved", out_dir)
    ctx.progress.say(_summary([result], loaded=True))
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


def cmd_sandbox(ctx: Context) -> int:
    import errno
    import logging

    from .sandbox import Sandbox
    from .sandbox.api_handler import LEDGER_PATH
    from .sandbox.cli_args import config_from_args

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config, faults = config_from_args(ctx.args)
    try:
        sb = Sandbox(config, faults).start()
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            raise errors.InvalidRequestError(
                f"Port {config.port} on 127.0.0.1 cannot be used ({exc.strerror}): another "
                "sandbox may be running there. Pick another with --port, or --port 0 for any "
                "free port.",
                field="port",
            ) from None
        raise
    key = next(iter(config.keys))
    with ctx.stop.installed():
        print(
            "Grok Imagine sandbox running (Ctrl-C to stop). Point the nodes or the CLI at it with:"
        )
        print(f"  {BASE_URL_ENV}={sb.base_url} {KEY_ENV}={key}")
        print(f"Its ledger (creates, credits, balance per key): GET {sb.base_url}{LEDGER_PATH}")
        sys.stdout.flush()
        try:
            while not ctx.stop.event.wait(0.2):
                pass
        finally:
            sb.stop()
    return EXIT_OK


def cmd_key(ctx: Context) -> int:
    from .api import config

    path = config.resolve_key_file()
    action = ctx.args.action
    if action == "set":
        if sys.stdin.isatty():
            import getpass

            key = getpass.getpass("API key (typed input is not shown): ")
        else:
            key = sys.stdin.readline()
        if not key.strip():
            raise errors.MissingKeyError(
                "No key was given on standard input: type it at the prompt, or pipe it in "
                f"(`{PROG} key set < keyfile`).",
                advice=errors.Advice.NONE,
            )
        config.write_key_file(path, key)
        print(f"Key saved to {path} (mode 0600).")
    elif action == "clear":
        if not path.exists():
            print(f"No key file at {path}: nothing to remove.")
            return EXIT_OK
        path.unlink()
        print(f"Removed {path}.")
    else:
        settings = config.load_settings()
        print(
            f"Key set ({settings.masked_key}) from {settings.key_source}; "
            f"API at {settings.base_url}."
        )
    return EXIT_OK


# --- argument parsing ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other error here."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value

    return parse


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("comfyui-grok-imagine")
    except metadata.PackageNotFoundError:
        return "unknown (the pack is not installed as a package)"


def _epilog() -> str:
    env = (
        (KEY_ENV, "the API in One key (wins over the key file)"),
        (KEY_FILE_ENV, "the key file (default: ~/.config/grok-imagine/api_key)"),
        (BASE_URL_ENV, "the API address (default https://apiin.one; the sandbox's for tests)"),
        (HOME_ENV, "journal and kept files (default ~/.local/share/grok-imagine)"),
        (JOURNAL_URL_ENV, "a shared PostgreSQL journal for a fleet (default: the local file)"),
        (DAILY_LIMIT_ENV, "the daily credit limit (default: none, or the settings file's)"),
        (POLL_SCALE_ENV, "scale the polling delays (sandbox only, e.g. 0.1)"),
    )
    lines = [
        "The seed is the re-run switch: the same command with the same inputs resumes or reuses",
        "the task already paid for (after Ctrl-C, a crash, a timeout); --new or another --seed",
        "pays for new images. The last line of each run says: new (N credits charged), resumed",
        "or reused (free).",
        "",
        "environment variables:",
        *(f"  {name:26} {what}" for name, what in env),
        "",
        "exit codes:",
        *(f"  {code:<4} {what}" for code, what in EXIT_CODES),
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Grok Imagine (via API in One) from the command line: generate, upscale, "
        "recover paid tasks, and serve a local sandbox.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def home_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--home",
            help=f"journal and kept-files folder (default: ${HOME_ENV} or the user data folder)",
        )
        p.add_argument(
            "--journal-url",
            metavar="URL",
            help="a shared journal for a fleet of workers: postgresql://user:password@host/db "
            f"(default: ${JOURNAL_URL_ENV}, else the journal file in --home)",
        )

    def add_common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-o",
            "--output",
            default="grok-output",
            help="folder the image files are copied to (default: grok-output)",
        )
        p.add_argument(
            "--timeout",
            type=_positive_seconds,
            default=DEFAULT_TASK_TIMEOUT_S,
            help=f"seconds to wait for the task, more than 0 (default: "
            f"{DEFAULT_TASK_TIMEOUT_S:g}); the task keeps running after it and the same command "
            "resumes it",
        )
        home_arg(p)
        p.add_argument(
            "--sandbox",
            action="store_true",
            help="use an in-process local sandbox: no key, no credits (it starts empty)",
        )

    def add_seed(p: argparse.ArgumentParser, what: str) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument(
            "--seed",
            type=_int_between(0, SEED_MAX),
            help=f"the re-run switch (default {DEFAULT_SEED}): the same seed with the same "
            f"inputs resumes or reuses the {what} already paid for; a new seed pays again",
        )
        group.add_argument(
            "--new",
            action="store_true",
            help=f"pay for a new {what} (draws a new seed and prints it)",
        )

    g = sub.add_parser(
        "generate",
        help=f"text-to-image ({TEXT_TO_IMAGE_CREDITS} credits per new task)",
        description="Text-to-image. Running the same command again resumes or reuses the same "
        "task(s) without paying again; --new (or another --seed) pays for new images.",
    )
    g.add_argument("prompt", help="what to draw (up to 5000 characters; quote it)")
    g.add_argument(
        "--aspect-ratio", choices=validation.ASPECT_RATIOS, help="default: the provider's"
    )
    g.add_argument(
        "--tasks",
        type=_int_between(1, validation.MAX_PARALLEL_TASKS),
        default=1,
        help=f"tasks to run in parallel, 1-{validation.MAX_PARALLEL_TASKS} (default 1)",
    )
    add_seed(g, "task")
    g.add_argument(
        "--upscale", action="store_true", help=f"then upscale each task ({UPSCALE_CREDITS} credits)"
    )
    add_common(g)
    g.set_defaults(func=cmd_generate)

    u = sub.add_parser(
        "upscale",
        help=f"upscale a text-to-image task by its id ({UPSCALE_CREDITS} credits)",
        description="Upscale a finished text-to-image task. The same command again resumes or "
        "reuses the upscale already paid for; --new pays for another.",
    )
    u.add_argument("task_id", help="the id of a finished text-to-image task of yours")
    add_seed(u, "upscale")
    add_common(u)
    u.set_defaults(func=cmd_upscale)

    t = sub.add_parser("task", help="fetch the results of an existing task by id (free)")
    t.add_argument("task_id", help="any task id of yours (`grok-imagine tasks` lists them)")
    add_common(t)
    t.set_defaults(func=cmd_task)

    j = sub.add_parser("tasks", help="list the journal of paid tasks, or show one")
    j.add_argument("task_id", nargs="?", help="show this task's journal entry in full")
    j.add_argument(
        "--limit",
        type=_int_between(1, 1_000_000),
        default=20,
        help="how many recent tasks to list (default 20)",
    )
    home_arg(j)
    j.set_defaults(func=cmd_tasks)

    r = sub.add_parser(
        "resolve", help="settle an uncertain create: its task id from the dashboard, or none"
    )
    r.add_argument("entry", type=int, help=f"the journal row (`{PROG} tasks` lists them)")
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

    k = sub.add_parser(
        "key",
        help="store, check or remove the API key file",
        description="status: where the key in use comes from (masked). set: read the key from "
        "standard input (a hidden prompt on a terminal, else the first line piped in) and save "
        "it to the key file, mode 0600. clear: delete the key file.",
    )
    k.add_argument(
        "action",
        choices=("status", "set", "clear"),
        nargs="?",
        default="status",
        help="status (default), set (reads standard input) or clear",
    )
    k.set_defaults(func=cmd_key)
    return parser


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, errors.TaskTimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, errors.CancelledError):
        return EXIT_INTERRUPTED
    if isinstance(exc, (errors.InvalidRequestError, errors.MissingKeyError)) and not getattr(
        exc, "from_server", False
    ):
        return EXIT_USAGE
    if isinstance(exc, errors.GrokError):
        return EXIT_API
    return EXIT_INTERNAL


def _error_line(exc: BaseException, ctx: Context) -> str:
    if isinstance(exc, errors.GrokError):
        return exc.line(Surface.CLI, rerun=ctx.rerun() if _repeatable(ctx) else None)
    text = errors.redact(errors.exception_line(exc))
    return f"unexpected {type(exc).__name__}: {text} (a bug: please report it)"


def _repeatable(ctx: Context) -> bool:
    return ctx.args.command in ("generate", "upscale", "task", "resolve")


def interrupt_lines(ctx: Context) -> list[str]:
    """What Ctrl-C leaves behind: each task id created or in flight, and the command to resume."""
    lines = ["interrupted: stopped waiting (the tasks themselves are not cancelled)."]
    known = [t for t in ctx.progress.tracks if t.task_id]
    for track in known:
        paid = (
            f", created by this run: {track.created_credits} credits"
            if track.created_credits is not None
            else ""
        )
        state = "is done and kept" if track.done else "keeps running at API in One"
        lines.append(f"  [{track.label}] task {track.task_id} {state}{paid}")
    unanswered = [t for t in ctx.progress.tracks if not t.task_id and not t.done]
    if unanswered and ctx.args.command != "task":
        lines.append(
            f"  {len(unanswered)} request(s) had no task id yet (a create may have been in "
            "flight; if so, the same command says so and sends nothing again)"
        )
    if getattr(ctx.args, "sandbox", False):
        lines.append(
            "The in-process sandbox stops with this command, so its tasks end here; running the "
            "command again starts afresh (free)."
        )
    elif _repeatable(ctx):
        lines.append(f"Run `{ctx.rerun()}` to pick the work up without paying again.")
    return lines


def main(argv: list[str] | None = None, *, run: Callable[..., int] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    ctx = Context(args, argv)
    try:
        code = _dispatch(ctx, run)
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at exit
        return code
    except errors.GrokError as exc:
        if isinstance(exc, errors.CancelledError) and ctx.stop.is_set():
            for line in interrupt_lines(ctx):
                ctx.progress.say(line)
            return EXIT_INTERRUPTED
        return _fail(f"error: {_error_line(exc, ctx)}", _exit_code(exc))
    except KeyboardInterrupt:
        return _fail("interrupted: nothing more was done.", EXIT_INTERRUPTED)
    except EOFError:
        return _fail("error: standard input ended before anything was read.", EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (`| head`): say so once, where it can still be read.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return _fail("stopped: the output pipe was closed.", EXIT_PIPE)
    except Exception as exc:
        return _fail(f"error: {_error_line(exc, ctx)}", EXIT_INTERNAL)
    finally:
        _close_journals()


def _dispatch(ctx: Context, run: Callable[..., int] | None) -> int:
    args = ctx.args
    if run is not None:
        return run(args)
    if args.func is cmd_sandbox:
        return cmd_sandbox(ctx)
    if not _repeatable(ctx):
        return args.func(ctx)
    with ctx.stop.installed():
        try:
            return args.func(ctx)
        except Interrupted:
            for line in interrupt_lines(ctx):
                ctx.progress.say(line)
            _close_journals(wait_s=0.2)
            _hard_exit(EXIT_INTERRUPTED)


def _fail(line: str, code: int) -> int:
    with contextlib.suppress(Exception):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return code
