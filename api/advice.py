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

__all__ = [
    "DAILY_LIMIT_ENTRY",
    "SETTINGS_ENTRY",
    "Advice",
    "AdviceFacts",
    "Surface",
    "advice_text",
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


def advice_text(advice: Advice, surface: Surface, facts: AdviceFacts | None = None) -> str:
    """The advice as one or two sentences for ``surface`` ("" for ``Advice.NONE``)."""
    f = facts or AdviceFacts()
    node = surface is Surface.NODE
    again = "queue it again" if node else "run the command again"
    rerun = "the same node again" if node else (f"`{f.rerun}`" if f.rerun else "the same command")
    queue_rerun = f"Queue {rerun}" if node else f"Run {rerun}"
    load = (
        f"use Grok Load Task with the id {f.task_id}"
        if node
        else f"fetch it with `grok-imagine task {f.task_id}`"
    )
    if advice is Advice.NONE:
        return ""
    if advice is Advice.SET_KEY:
        if node:
            return (
                f"Set the {KEY_ENV} environment variable or save the key in ComfyUI "
                f"({SETTINGS_ENTRY})."
            )
        return (
            f"Run `grok-imagine key set` (it reads the key from standard input) or set "
            f"{KEY_ENV}; to try it without a key or credits, add --sandbox."
        )
    if advice is Advice.CHECK_KEY:
        where = SETTINGS_ENTRY if node else "`grok-imagine key set`"
        return f"Check it in your API in One dashboard and set it again ({KEY_ENV} or {where})."
    if advice is Advice.ADD_CREDITS:
        return f"Top up in your API in One dashboard, then {again}."
    if advice is Advice.RATE_LIMITED:
        fewer = "lower parallel_tasks" if node else "lower --tasks"
        return f"Wait that long and {again}, or {fewer}."
    if advice is Advice.RETRY:
        return f"{again[0].upper()}{again[1:]}."
    if advice is Advice.RETRY_LATER:
        return f"Try again in a few minutes ({again} then)."
    if advice is Advice.RETRY_FAILED:
        return (
            f"{again[0].upper()}{again[1:]} (a new task is created), or change the prompt if it "
            "keeps failing."
        )
    if advice is Advice.FIX_INPUT:
        if f.field:
            name = f"the {f.field} input" if node else _CLI_ARGS.get(f.field, f"--{f.field}")
            return f"Fix {name} and {again}."
        return "Check the node's inputs." if node else "Check the command's arguments."
    if advice is Advice.RESUME:
        if f.task_id:
            return f"{queue_rerun} to resume it without paying again, or {load}."
        return f"{queue_rerun} to pick the request up without paying again."
    if advice is Advice.LOAD_LATER:
        if f.task_id:
            return f"Try again later: {load} (free)."
        return f"Try again later ({again})."
    if advice is Advice.CHECK_UNCERTAIN:
        if node:
            # In ComfyUI the journal row is settled where the user already is: the Grok Imagine
            # sidebar tab shows the row with its task-id box, Fetch and Not created.
            text = (
                "Look for it in your API in One dashboard; if you find its task id, enter it on "
                "the task's row in the Grok Imagine sidebar tab and press Fetch (free), or press "
                "Not created there if it was never made. "
            )
        else:
            text = (
                "Look for it in your API in One dashboard or with `grok-imagine tasks`; if you "
                "find its task id, fetch it with `grok-imagine task TASK_ID` (free). "
            )
        if f.source_task_id and node:
            return text + (
                "To pay for a new upscale on purpose, run `grok-imagine upscale "
                f"{f.source_task_id} --new` (Grok Upscale has no seed input)."
            )
        if node:
            return text + "To create a new task on purpose, change the seed."
        if f.journal_row is not None:
            row = f.journal_row
            return (
                "Look for it in your API in One dashboard; if you find its task id, run "
                f"`grok-imagine resolve {row} --task-id ID` (free), or `grok-imagine resolve "
                f"{row} --not-created` if it was never made. To pay for a new task on purpose, "
                "run the command with --new."
            )
        return text + "To pay for a new task on purpose, run the command with --new."
    if advice is Advice.NEW_TASK:
        if node:
            return "Change the seed to create a new task (5 credits)."
        return "Run the command with --new to create a new task."
    if advice is Advice.MOVE_STORAGE:
        if node:
            return (
                "Or start ComfyUI with a --user-directory / --output-directory on a disk that "
                "works; then queue it again."
            )
        return (
            "Or point --home (see --help) at a folder on a disk that works; then run "
            "the command again."
        )
    if advice is Advice.RAISE_LIMIT:
        if f.limit_source == "env":
            how = f"raise or unset {DAILY_LIMIT_ENV}"
            if node:
                how += " in ComfyUI's environment and restart ComfyUI"
        elif node:
            how = f"raise it in {DAILY_LIMIT_ENTRY}"
        else:
            where = f.limit_file or "the settings file beside the key file"
            how = f"raise daily_credit_limit in {where} (or set {DAILY_LIMIT_ENV}, which wins)"
        return f"To go on, {how}, or wait until tomorrow."
    if advice is Advice.SAVE_LIMIT:
        if node:
            return f"Save the daily credit limit again in {DAILY_LIMIT_ENTRY}."
        return (
            f"Fix or delete that file (it holds daily_credit_limit), or set {DAILY_LIMIT_ENV}, "
            "which wins over it."
        )
    raise ValueError(f"unknown advice {advice!r}")
