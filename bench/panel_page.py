"""Benchmark: the Grok Imagine panel with a long journal, and what the daily limit adds to a create.

A real SQLite journal is filled with 10,000 finished tasks of 6 kept files each (60,000 file rows),
then the panel's real aiohttp route is asked for pages over loopback HTTP (first, middle and last
page); and the limit's check-and-reserve (``Journal.reserve`` + ``release``, the step every node
run with a limit takes before sending) is timed on the same journal.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from pack import submodule
from results import BenchResult, Figure, markdown_table
from stats import Summary

ROWS = 10_000
FILES_PER_TASK = 6
PAGE = 50
PAGE_TARGET_MS = 100.0
LEDGER_TARGET_MS = 5.0


def _fill(path: Path, rows: int) -> None:
    now = time.time()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO requests (identity, model, prompt, seed, batch_index, task_id, state,"
            " credits, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, 'succeeded', 5, ?, ?)",
            [
                (f"id{i}", "grok-imagine/text-to-image", f"a prompt {i} " * 8, i, f"task{i:05d}",
                 now - (rows - i) * 60, now - (rows - i) * 60)
                for i in range(rows)
            ],
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO files (task_id, idx, path, sha256, size, url, saved_at)"
            " VALUES (?, ?, ?, ?, 1000, NULL, ?)",
            [
                (f"task{i:05d}", k, f"/kept/task{i:05d}/{k}.jpg", "0" * 64, now)
                for i in range(rows)
                for k in range(FILES_PER_TASK)
            ],
        )


async def _pages(routes, panel_routes, offsets: list[int], rounds: int) -> dict[int, list[float]]:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    table = web.RouteTableDef()
    panel_routes.add_routes(table, routes)
    app = web.Application()
    app.add_routes(table)
    took: dict[int, list[float]] = {offset: [] for offset in offsets}
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await client.get(f"{panel_routes.PREFIX}/tasks?limit={PAGE}")  # warm-up
        for _ in range(rounds):
            for offset in offsets:
                began = time.perf_counter()
                response = await client.get(
                    f"{panel_routes.PREFIX}/tasks?offset={offset}&limit={PAGE}"
                )
                body = await response.json()
                took[offset].append((time.perf_counter() - began) * 1000)
                assert response.status == 200 and body["total"] == ROWS
    return took


def run(quick: bool) -> BenchResult:
    journal_mod = submodule("journal")
    panel_routes = submodule("nodes.panel_routes")
    spend = submodule("journal.spend_limit")
    rounds = 5 if quick else 30
    with tempfile.TemporaryDirectory(prefix="grok-bench-panel-") as tmp:
        home = Path(tmp)
        journal = journal_mod.Journal(home / "journal.sqlite")
        _fill(home / "journal.sqlite", ROWS)
        runner = journal_mod.TaskRunner(
            lambda: None, journal=journal, files=journal_mod.FileStore(home / "files")
        )
        context = panel_routes.PanelContext(lambda: runner, lambda: home / "settings.json", {})
        routes = panel_routes.PanelRoutes(lambda: context)
        offsets = [0, ROWS // 2, ROWS - PAGE]
        took = asyncio.run(_pages(routes, panel_routes, offsets, rounds))

        identity = journal_mod.RequestIdentity.text_to_image("a new prompt", seed=1)
        since = spend.day_start(time.time())
        ledger_ms, reserve_ms = [], []
        for _ in range(rounds * 4):
            began = time.perf_counter()
            journal.spent(since)
            ledger_ms.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            held = journal.reserve([identity], limit=10**9, since=since)
            journal.release([entry.id for entry in held.entries])
            reserve_ms.append((time.perf_counter() - began) * 1000)
        journal.close()

    every = [t for samples in took.values() for t in samples]
    page = Summary.of(every)
    reserve = Summary.of(reserve_ms)
    ledger = Summary.of(ledger_ms)
    result = BenchResult(
        key="panel_page",
        title="Panel page with 10,000 tasks; the limit's check per run",
        method=(
            f"A real journal with {ROWS:,} finished tasks ({FILES_PER_TASK} kept files each). "
            f"`GET /grok_imagine/tasks?limit={PAGE}` through the panel's aiohttp route over "
            f"loopback, {rounds} rounds of the first, middle and last page (after one warm-up). "
            "The limit's cost: the ledger sum every create under a limit runs inside its claim "
            "(`Journal.spent` over the day), and a run's `Journal.reserve` of one new request "
            "then `release` (two durable commits, fsync included), on the same journal."
        ),
    )
    result.figures.append(
        Figure(
            f"panel page of {PAGE} with {ROWS:,} rows (p95)",
            page.p95,
            "ms",
            f"<= {PAGE_TARGET_MS:.0f} ms",
            page.p95 <= PAGE_TARGET_MS,
        )
    )
    result.figures.append(
        Figure(
            f"daily-limit ledger sum over {ROWS:,} rows (median)",
            ledger.p50,
            "ms",
            f"<= {LEDGER_TARGET_MS:.0f} ms",
            ledger.p50 <= LEDGER_TARGET_MS,
        )
    )
    rows = []
    for offset, samples in took.items():
        summary = Summary.of(samples)
        rows.append([f"offset {offset}", f"{summary.p50:.1f} ms", f"{summary.p95:.1f} ms"])
    rows.append(["ledger sum (spent today)", f"{ledger.p50:.2f} ms", f"{ledger.p95:.2f} ms"])
    rows.append(["reserve + release", f"{reserve.p50:.2f} ms", f"{reserve.p95:.2f} ms"])
    result.details += markdown_table(["request", "median", "p95"], rows)
    result.data = {
        "pages_ms": {str(k): v for k, v in took.items()},
        "reserve_ms": reserve_ms,
        "ledger_ms": ledger_ms,
        "ledger": ledger.as_dict(),
        "page": page.as_dict(),
        "reserve": reserve.as_dict(),
    }
    return result


if __name__ == "__main__":
    outcome = run(quick="--quick" in sys.argv)
    print(json.dumps({"page": outcome.data["page"], "reserve": outcome.data["reserve"]}, indent=2))
