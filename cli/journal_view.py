"""``grok-imagine tasks``: the journal's rows (with the row number ``resolve`` takes), one row in
full, today's and this month's spend, and the uncertain creates still to settle.

Refused attempts (state ``rejected``: the API or this machine refused the create, so no task
exists and nothing was charged) are left out unless ``--all`` asks for them: after a few mistakes
(a wrong key, a refused connection) they would crowd the paid tasks out of the list.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import errors, validation
from ..journal import State
from ..journal.store import SpendLedger
from .context import PROG, Context, daily_limit
from .exit_codes import EXIT_OK

if TYPE_CHECKING:
    from ..journal import JournalEntry
    from ..journal.store import JournalStore

HEADER = (
    f"{'row':>5}  {'updated':19}  {'task id':24}  {'state':10}  {'cr':>3}  {'files':>5}  prompt"
)


def cmd_tasks(ctx: Context) -> int:
    args = ctx.args
    target = ctx.journal_target()
    if isinstance(target, Path) and not target.exists():
        print(f"No journal yet at {target}: no task has been run from this machine.")
        return EXIT_OK
    journal = ctx.open_journal(target, paced=False)
    if args.task_id:
        entry = journal.get(validation.validate_task_id(args.task_id))
        if entry is None:
            raise errors.InvalidRequestError(
                f"Task {args.task_id} is not in the journal at {journal.where}: `{PROG} tasks` "
                f"lists the tasks it knows; `{PROG} task {args.task_id}` fetches any task of "
                "yours by id.",
                field="task_id",
            )
        show_entry(entry)
        return EXIT_OK
    rows, hidden = listed_rows(journal, args.limit, show_all=args.all)
    print(HEADER)
    for entry in rows:
        print(row_line(entry))
    if hidden:
        print(
            f"{hidden} refused attempt{'s' if hidden != 1 else ''} not shown (no task was made, "
            f"nothing charged or counted): `{PROG} tasks --all` lists them."
        )
    if isinstance(journal, SpendLedger):
        _print_spend(journal)
        _print_uncertain(journal)
    return EXIT_OK


def listed_rows(
    journal: JournalStore, limit: int, *, show_all: bool
) -> tuple[list[JournalEntry], int]:
    """The newest ``limit`` rows to list, and how many refused attempts the journal holds that
    are not listed (0 with ``show_all``)."""
    if isinstance(journal, SpendLedger):
        rows = journal.page(limit, with_rejected=show_all)
        hidden = 0 if show_all else journal.count() - journal.count(with_rejected=False)
        return rows, hidden
    rows = journal.recent(limit)  # a store without paging: its newest rows, filtered here
    shown = rows if show_all else [e for e in rows if e.state != State.REJECTED]
    return shown, len(rows) - len(shown)


def row_line(entry: JournalEntry) -> str:
    prompt = (entry.prompt or f"(upscale of {entry.source_task_id})").replace("\n", " ")
    return (
        f"{entry.id:>5}  {when(entry.updated_at):19}  {entry.task_id or '-':24}  "
        f"{entry.state:10}  {entry.credits:>3}  {len(entry.files):>5}  {prompt[:48]}"
    )


def _print_spend(journal: SpendLedger) -> None:
    """Today's and this month's credits from the journal's ledger, and the limit in force."""
    from ..journal.spend_limit import SpendLimitConfigError, day_start, month_start

    now = time.time()
    try:
        limit = daily_limit()()
        of = f" of a {limit.credits}-credit daily limit" if limit.credits is not None else ""
    except SpendLimitConfigError as exc:
        of = f" (daily limit unreadable: {exc.line(errors.Surface.CLI)})"
    print(
        f"Spent today: {journal.spent(day_start(now))} credits{of}; "
        f"this month: {journal.spent(month_start(now))} credits."
    )


def _print_uncertain(journal: SpendLedger) -> None:
    for entry in journal.uncertain():
        print(
            f"Uncertain create, row {entry.id} ({when(entry.created_at)}, {entry.credits} "
            f"credits): find its task id in the API in One dashboard, then `{PROG} resolve "
            f"{entry.id} --task-id ID` (free), or `{PROG} resolve {entry.id} --not-created`."
        )


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def show_entry(entry: JournalEntry) -> None:
    rows = {
        "row": entry.id,
        "task id": entry.task_id or "-",
        "state": entry.state,
        "model": entry.model or "-",
        "prompt": entry.prompt or "-",
        "aspect ratio": entry.aspect_ratio or "provider default",
        "seed / index": f"{entry.seed} / {entry.index}",
        "source task": entry.source_task_id or "-",
        "credits": entry.credits,
        "error": entry.error or "-",
        "created": when(entry.created_at),
        "finished": when(entry.finished_at),
    }
    for name, value in rows.items():
        print(f"{name:>13}: {value}")
    for file in entry.files:
        print(f"{'file':>13}: {file.path}")
