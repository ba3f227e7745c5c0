"""The command line's grammar: commands, options, their help, and one-line usage errors."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ..api import validation
from ..api.env import (
    BASE_URL_ENV,
    CREATE_RATE_ENV,
    DAILY_LIMIT_ENV,
    HOME_ENV,
    JOURNAL_URL_ENV,
    KEY_ENV,
    KEY_FILE_ENV,
    POLL_SCALE_ENV,
)
from ..api.models import TEXT_TO_IMAGE_CREDITS, UPSCALE_CREDITS
from ..api.task import DEFAULT_TASK_TIMEOUT_S
from .commands import DEFAULT_SEED, SEED_MAX, cmd_generate, cmd_resolve, cmd_task, cmd_upscale
from .context import PROG
from .exit_codes import EXIT_CODES, EXIT_USAGE
from .journal_view import cmd_tasks
from .service_commands import cmd_key, cmd_sandbox


def usage_error(prog: str, message: str) -> NoReturn:
    """A usage error is one line (and exit 2), like every other error here."""
    sys.stderr.write(f"error: {prog}: {message} (see `{prog} --help`)\n")
    raise SystemExit(EXIT_USAGE)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, message)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed; a prompt typed without quotes (``generate a cat``) gets a quote hint."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    if args.command == "generate" and not any(word.startswith("-") for word in extra):
        words = [args.prompt, *extra]
        example = shlex.join([PROG, "generate", " ".join(words)])
        usage_error(
            f"{PROG} generate",
            f"the prompt came as {len(words)} words: put it in quotes, as in `{example}`",
        )
    parser.error(f"unrecognized arguments: {' '.join(extra)}")


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
        (CREATE_RATE_ENV, "creates per seconds for all users of the journal (20/10, or off)"),
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
        *(f"  {name:32} {what}" for name, what in env),
        "",
        "exit codes:",
        *(f"  {code:<4} {what}" for code, what in EXIT_CODES),
    ]
    return "\n".join(lines)


def _home_args(p: argparse.ArgumentParser) -> None:
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


def _common_args(p: argparse.ArgumentParser) -> None:
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
    _home_args(p)
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="use an in-process local sandbox: no key, play credits; it starts empty and ends "
        "with the command, so every run is a new task",
    )


def _seed_args(p: argparse.ArgumentParser, what: str) -> None:
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
    _paid_commands(sub)
    _journal_commands(sub)
    _service_commands(sub)
    return parser


def _paid_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
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
    _seed_args(g, "task")
    g.add_argument(
        "--upscale", action="store_true", help=f"then upscale each task ({UPSCALE_CREDITS} credits)"
    )
    _common_args(g)
    g.set_defaults(func=cmd_generate)

    u = sub.add_parser(
        "upscale",
        help=f"upscale a text-to-image task by its id ({UPSCALE_CREDITS} credits)",
        description="Upscale a finished text-to-image task. The same command again resumes or "
        "reuses the upscale already paid for; --new pays for another.",
    )
    u.add_argument("task_id", help="the id of a finished text-to-image task of yours")
    _seed_args(u, "upscale")
    _common_args(u)
    u.set_defaults(func=cmd_upscale)

    t = sub.add_parser("task", help="fetch the results of an existing task by id (free)")
    t.add_argument("task_id", help=f"any task id of yours (`{PROG} tasks` lists them)")
    _common_args(t)
    t.set_defaults(func=cmd_task)


def _journal_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    j = sub.add_parser("tasks", help="list the journal of paid tasks, or show one")
    j.add_argument("task_id", nargs="?", help="show this task's journal entry in full")
    j.add_argument(
        "--limit",
        type=_int_between(1, 1_000_000),
        default=20,
        help="how many recent tasks to list (default 20)",
    )
    j.add_argument(
        "--all",
        action="store_true",
        help="also list refused attempts (no task was made: never charged, never counted)",
    )
    _home_args(j)
    j.set_defaults(func=cmd_tasks)

    r = sub.add_parser(
        "resolve", help="settle an uncertain create: its task id from the dashboard, or none"
    )
    r.add_argument(
        "row",
        type=int,
        metavar="ROW",
        help=f"the journal row: the first column of `{PROG} tasks` (the 'answer was lost' error "
        "names it too)",
    )
    how = r.add_mutually_exclusive_group(required=True)
    how.add_argument("--task-id", help="the task id found in the API in One dashboard (free)")
    how.add_argument(
        "--not-created", action="store_true", help="no task was made: 0 credits, create anew"
    )
    _common_args(r)
    r.set_defaults(func=cmd_resolve)


def _service_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    from ..sandbox.cli_args import add_arguments

    s = sub.add_parser("sandbox", help="serve the local stand-in API on 127.0.0.1")
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
