"""The "what to do" half of every error, built in one place for both surfaces.

An error says *what happened* in its own words (``GrokError.what``) and carries an ``Advice`` kind
plus the facts the advice needs (task id, seed, source task, input field). The words of the
advice depend on where the user is: in ComfyUI they name node actions (queue again, Grok Load
Task, Settings), on the command line they name commands (`grok-imagine task ID`, --new). Both
texts live in this table, so the two surfaces give the same advice in their own terms and no
layer ever parses another's sentences.

Standard library only: imported when ComfyUI loads the pack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .env import DAILY_LIMIT_ENV, KEY_ENV
from .messages import fill

__all__ = [
    "ADVICE_WORDS",
    "DAILY_LIMIT_ENTRY",
    "SETTINGS_ENTRY",
    "Advice",
    "AdviceFacts",
    "Surface",
    "Words",
    "advice_case",
    "advice_cases",
    "advice_text",
    "advice_values",
]

SETTINGS_ENTRY = "Settings \u203a Grok Imagine \u203a API key"
"""Where ComfyUI users set the key (the pack's entry in ComfyUI's Settings dialog)."""
DAILY_LIMIT_ENTRY = "Settings \u203a Grok Imagine \u203a Daily credit limit"
"""Where ComfyUI users set the daily credit limit."""


class Surface(enum.Enum):
    """Where the user reads the message."""

    NODE = "node"
    """ComfyUI: the node's error dialog and status text."""
    CLI = "cli"
    """The `grok-imagine` command line."""


class Advice(enum.Enum):
    """What the user can do next, by kind; the words come from ``advice_text``."""

    NONE = "none"
    """The error's own text already says it all, the same on every surface."""
    SET_KEY = "set_key"
    CHECK_KEY = "check_key"
    ADD_CREDITS = "add_credits"
    RATE_LIMITED = "rate_limited"
    RETRY = "retry"
    RETRY_LATER = "retry_later"
    RETRY_FAILED = "retry_failed"
    """The task failed (not charged): the same request again makes a new task."""
    FIX_INPUT = "fix_input"
    RESUME = "resume"
    """The task keeps running: the same request again resumes it without paying."""
    LOAD_LATER = "load_later"
    """The task exists: fetch it by its id a little later (free)."""
    CHECK_UNCERTAIN = "check_uncertain"
    """A create may have been charged without us learning its task id."""
    NEW_TASK = "new_task"
    """The result cannot be had any more: only a new (paid) task gives images."""
    MOVE_STORAGE = "move_storage"
    """The journal's or kept files' folder cannot be used: fix it, or keep them elsewhere."""
    RAISE_LIMIT = "raise_limit"
    """The daily credit limit refused the run: raise it where it was set, or wait a day."""
    SAVE_LIMIT = "save_limit"
    """The settings file that holds the limit is damaged: set the limit again."""


@dataclass(frozen=True)
class AdviceFacts:
    """What an advice may name. ``rerun`` is the exact command to repeat (the CLI knows it)."""

    task_id: str | None = None
    source_task_id: str | None = None
    field: str | None = None
    rerun: str | None = None
    journal_row: int | None = None
    """The journal row of an uncertain create (the CLI's ``resolve`` takes it)."""
    limit_source: str | None = None
    """Who set the daily credit limit: ``"env"`` or ``"settings"`` (the settings file)."""
    limit_file: str | None = None
    """The settings file that holds the limit (the CLI names it; ComfyUI has an entry)."""


_CLI_ARGS = {
    "prompt": "the PROMPT",
    "aspect_ratio": "--aspect-ratio",
    "task_id": "the TASK_ID",
    "tasks": "--tasks",
    "timeout": "--timeout",
    "seed": "--seed",
}
"""How the CLI names an input the node calls ``field`` (others are ``--field``)."""

Text = str | tuple[tuple[str, str], ...]
"""A template, or ``(condition, template)`` cases tried in order: the condition names a fact
that must be known (see ``_known``), "" always holds."""


@dataclass(frozen=True)
class Words:
    """One advice kind: the node's words and the CLI's, side by side."""

    node: Text
    cli: Text


_NODE_LOOK = (
    # In ComfyUI the journal row is settled where the user already is: the Grok Imagine sidebar
    # tab shows the row with its task-id box, Fetch and Not created.
    "Look for it in your API in One dashboard; if you find its task id, enter it on the task's "
    "row in the Grok Imagine sidebar tab and press Fetch (free), or press Not created there if "
    "it was never made. "
)
_CLI_LOOK = (
    "Look for it in your API in One dashboard or with `grok-imagine tasks`; if you find its task "
    "id, fetch it with `grok-imagine task TASK_ID` (free). "
)
_LIMIT_TAIL = ", or wait until tomorrow."

ADVICE_WORDS: dict[Advice, Words] = {
    Advice.NONE: Words("", ""),
    Advice.SET_KEY: Words(
        "Set the {key_env} environment variable or save the key in ComfyUI ({settings_entry}).",
        "Run `grok-imagine key set` (it reads the key from standard input) or set {key_env}; to "
        "try it without a key or credits, add --sandbox.",
    ),
    Advice.CHECK_KEY: Words(
        "Check it in your API in One dashboard and set it again ({key_env} or {settings_entry}).",
        "Check it in your API in One dashboard and set it again ({key_env} or `grok-imagine key "
        "set`).",
    ),
    Advice.ADD_CREDITS: Words(
        "Top up in your API in One dashboard, then queue it again.",
        "Top up in your API in One dashboard, then run the command again.",
    ),
    Advice.RATE_LIMITED: Words(
        "Wait that long and queue it again, or lower parallel_tasks.",
        "Wait that long and run the command again, or lower --tasks.",
    ),
    Advice.RETRY: Words("Queue it again.", "Run the command again."),
    Advice.RETRY_LATER: Words(
        "Try again in a few minutes (queue it again then).",
        "Try again in a few minutes (run the command again then).",
    ),
    Advice.RETRY_FAILED: Words(
        "Queue it again (a new task is created), or change the prompt if it keeps failing.",
        "Run the command again (a new task is created), or change the prompt if it keeps failing.",
    ),
    Advice.FIX_INPUT: Words(
        (("field", "Fix the {field} input and queue it again."), ("", "Check the node's inputs.")),
        (
            ("field", "Fix {cli_arg} and run the command again."),
            ("", "Check the command's arguments."),
        ),
    ),
    Advice.RESUME: Words(
        (
            (
                "task_id",
                "Queue the same node again to resume it without paying again, or use Grok Load "
                "Task with the id {task_id}.",
            ),
            ("", "Queue the same node again to pick the request up without paying again."),
        ),
        (
            (
                "task_id",
                "Run {rerun} to resume it without paying again, or fetch it with `grok-imagine "
                "task {task_id}`.",
            ),
            ("", "Run {rerun} to pick the request up without paying again."),
        ),
    ),
    Advice.LOAD_LATER: Words(
        (
            ("task_id", "Try again later: use Grok Load Task with the id {task_id} (free)."),
            ("", "Try again later (queue it again)."),
        ),
        (
            ("task_id", "Try again later: fetch it with `grok-imagine task {task_id}` (free)."),
            ("", "Try again later (run the command again)."),
        ),
    ),
    Advice.CHECK_UNCERTAIN: Words(
        (
            (
                "source_task_id",
                _NODE_LOOK + "To pay for a new upscale on purpose, run `grok-imagine upscale "
                "{source_task_id} --new` (Grok Upscale has no seed input).",
            ),
            ("", _NODE_LOOK + "To create a new task on purpose, change the seed."),
        ),
        (
            (
                "journal_row",
                "Look for it in your API in One dashboard; if you find its task id, run "
                "`grok-imagine resolve {journal_row} --task-id ID` (free), or `grok-imagine "
                "resolve {journal_row} --not-created` if it was never made. To pay for a new task "
                "on purpose, run the command with --new.",
            ),
            ("", _CLI_LOOK + "To pay for a new task on purpose, run the command with --new."),
        ),
    ),
    Advice.NEW_TASK: Words(
        "Change the seed to create a new task (5 credits).",
        "Run the command with --new to create a new task.",
    ),
    Advice.MOVE_STORAGE: Words(
        "Or start ComfyUI with a --user-directory / --output-directory on a disk that works; then "
        "queue it again.",
        "Or point --home (see --help) at a folder on a disk that works; then run the command "
        "again.",
    ),
    Advice.RAISE_LIMIT: Words(
        (
            (
                "limit_from_env",
                "To go on, raise or unset {daily_limit_env} in ComfyUI's environment and restart "
                "ComfyUI" + _LIMIT_TAIL,
            ),
            ("", "To go on, raise it in {daily_limit_entry}" + _LIMIT_TAIL),
        ),
        (
            ("limit_from_env", "To go on, raise or unset {daily_limit_env}" + _LIMIT_TAIL),
            (
                "",
                "To go on, raise daily_credit_limit in {limit_file} (or set {daily_limit_env}, "
                "which wins)" + _LIMIT_TAIL,
            ),
        ),
    ),
    Advice.SAVE_LIMIT: Words(
        "Save the daily credit limit again in {daily_limit_entry}.",
        "Fix or delete that file (it holds daily_credit_limit), or set {daily_limit_env}, which "
        "wins over it.",
    ),
}
"""Every advice kind in both surfaces' words; ``{name}`` is filled from ``advice_values``."""


def advice_text(advice: Advice, surface: Surface, facts: AdviceFacts | None = None) -> str:
    """The advice as one or two sentences for ``surface`` ("" for ``Advice.NONE``)."""
    f = facts or AdviceFacts()
    cases = dict(advice_cases(advice, surface))
    return fill(cases[advice_case(advice, surface, f)], advice_values(f))


def advice_cases(advice: Advice, surface: Surface) -> tuple[tuple[str, str], ...]:
    """The advice's words for ``surface`` as ``(case, template)`` pairs: one pair with the case
    "" for an advice worded one way, else one per condition, in the order they are tried."""
    words = ADVICE_WORDS.get(advice)
    if words is None:
        raise ValueError(f"unknown advice {advice!r}")
    text = words.node if surface is Surface.NODE else words.cli
    return (("", text),) if isinstance(text, str) else text


def advice_case(advice: Advice, surface: Surface, facts: AdviceFacts) -> str:
    """Which case of the advice these facts get: the first whose condition holds."""
    known = _known(facts)
    return next(case for case, _ in advice_cases(advice, surface) if not case or case in known)


def _known(f: AdviceFacts) -> set[str]:
    """The conditions a case of ``ADVICE_WORDS`` may name, that hold for these facts."""
    conditions = {
        "task_id": bool(f.task_id),
        "source_task_id": bool(f.source_task_id),
        "field": bool(f.field),
        "journal_row": f.journal_row is not None,
        "limit_from_env": f.limit_source == "env",
    }
    return {name for name, holds in conditions.items() if holds}


def advice_values(f: AdviceFacts) -> dict[str, object]:
    """What each ``{name}`` of the advice's words stands for, with these facts."""
    return {
        "task_id": f.task_id,
        "source_task_id": f.source_task_id,
        "field": f.field,
        "cli_arg": _CLI_ARGS.get(f.field or "", f"--{f.field}"),
        "rerun": f"`{f.rerun}`" if f.rerun else "the same command",
        "journal_row": f.journal_row,
        "limit_file": f.limit_file or "the settings file beside the key file",
        "key_env": KEY_ENV,
        "settings_entry": SETTINGS_ENTRY,
        "daily_limit_env": DAILY_LIMIT_ENV,
        "daily_limit_entry": DAILY_LIMIT_ENTRY,
    }
