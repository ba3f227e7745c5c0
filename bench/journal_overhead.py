"""Benchmark: what the shared PostgreSQL journal costs per request, next to SQLite, same run.

Two measures, alternating between the backends so both see the same machine load:

* the journal work of one new paid request, without the network to the API: claim and
  ``creating`` row, the pacing turn, the task id, three state changes, six kept files, the
  final read (what ``TaskRunner`` asks of the journal around one 6-image task);
* a request served again from the kept files (``TaskRunner.text_to_image``, no API call).

PostgreSQL runs on 127.0.0.1 with fsync on (a throwaway cluster, or the server
``GROK_IMAGINE_TEST_PG_URL`` names); SQLite is the default journal (WAL, synchronous=FULL) in a
temporary folder. Round trips are the statements the PostgreSQL journal sends, counted.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pack import submodule
from results import BenchResult, Figure, markdown_table
from stats import Summary

PROMPT = "journal overhead benchmark"


def run(quick: bool) -> BenchResult:
    import pg_cluster as pg  # tools/: the throwaway cluster the tests use too

    reason = pg.why_not()
    if reason:
        return BenchResult("journal_overhead", "Journal overhead", skipped=reason)
    rounds = 30 if quick else 150
    with _server(pg) as server_url, tempfile.TemporaryDirectory(prefix="grok-bench-j-") as tmp:
        database = pg.new_database(server_url)
        try:
            return _measure(
                Path(tmp), database, rounds, durable="GROK_IMAGINE_TEST_PG_URL" not in os.environ
            )
        finally:
            pg.drop_database(server_url, database)


@contextmanager
def _server(pg: Any):
    given = os.environ.get(pg.PG_URL_ENV)
    if given:
        yield given
        return
    cluster = pg.Cluster()
    try:
        cluster.start(durable=True)
        yield cluster.server_url
    finally:
        cluster.destroy()


class _Counter:
    """Counts statements sent on any psycopg connection (each is one round trip)."""

    def __init__(self) -> None:
        import psycopg

        self.count = 0
        self._original = psycopg.Connection.execute
        counter = self

        def execute(conn: Any, *args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return counter._original(conn, *args, **kwargs)

        psycopg.Connection.execute = execute  # type: ignore[method-assign]

    def close(self) -> None:
        import psycopg

        psycopg.Connection.execute = self._original  # type: ignore[method-assign]


def _one_request(journal: Any, identity: Any, task_id: str, blob_dir: Path) -> None:
    """The journal calls of one new 6-image request, in the runner's order."""
    with journal.claim(identity) as claim:
        entry = claim.start_create()
    journal.create_turn(entry)
    journal.record_task_id(entry, task_id)
    journal.record_state(task_id, "queued")
    journal.record_state(task_id, "running")
    urls = [f"https://files.example/{task_id}/{i}.jpg" for i in range(6)]
    journal.record_state(task_id, "succeeded", result_urls=urls)
    entry = journal.get(task_id)
    for index, url in enumerate(urls):
        journal.record_file(task_id, index, blob_dir / f"{index}.jpg", "0" * 64, 1000, url)
    journal.get(task_id)


def _measure(tmp: Path, database: str, rounds: int, durable: bool) -> BenchResult:
    journal_mod = submodule("journal")
    open_mod = submodule("journal.open")
    pacing = submodule("journal.pacing")
    # A rate no run reaches: each store's turn is timed (a transaction under its lock), never
    # a wait.
    never_waits = pacing.CreateRate(10**9, 10.0)
    backends = {
        "SQLite": open_mod.open_journal(tmp / "journal.sqlite", rate=never_waits),
        "PostgreSQL": open_mod.open_journal(database, rate=never_waits),
    }
    new: dict[str, list[float]] = {name: [] for name in backends}
    reused: dict[str, list[float]] = {name: [] for name in backends}
    counter = _Counter()
    trips: dict[str, int] = {}
    try:
        # A finished request with its files kept, for the "served again" measure.
        runners = {}
        for name, journal in backends.items():
            files = journal_mod.FileStore(tmp / name / "files")
            identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=0)
            task_id = f"bench{name}kept"
            with journal.claim(identity) as claim:
                entry = claim.start_create()
            journal.record_task_id(entry, task_id)
            urls = [f"https://files.example/{task_id}/{i}.jpg" for i in range(6)]
            journal.record_state(task_id, "succeeded", result_urls=urls)
            for index in range(6):
                stored = files.save(task_id, index, _jpeg(), "JPEG")
                journal.record_file(
                    task_id, index, stored.path, stored.sha256, stored.size, urls[index]
                )
            runners[name] = journal_mod.TaskRunner(_no_client, journal=journal, files=files)

        for round_ in range(rounds):
            for name, journal in backends.items():
                identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=round_ + 1)
                before = counter.count
                started = time.perf_counter()
                _one_request(journal, identity, f"bench{name}{round_}", tmp)
                new[name].append(time.perf_counter() - started)
                if name == "PostgreSQL":
                    trips["new"] = counter.count - before
                before = counter.count
                started = time.perf_counter()
                result = runners[name].text_to_image(PROMPT, seed=0)
                reused[name].append(time.perf_counter() - started)
                assert result.reused and len(result.files) == 6
                if name == "PostgreSQL":
                    trips["reused"] = counter.count - before
    finally:
        counter.close()
        for journal in backends.values():
            journal.close()

    s_new = {name: Summary.of(values) for name, values in new.items()}
    s_reused = {name: Summary.of(values) for name, values in reused.items()}
    extra_new = s_new["PostgreSQL"].p50 - s_new["SQLite"].p50
    extra_reused = s_reused["PostgreSQL"].p50 - s_reused["SQLite"].p50
    result = BenchResult(
        key="journal_overhead",
        title="Journal overhead (PostgreSQL vs SQLite)",
        method=(
            f"{rounds} rounds, alternating the two backends in one process: the journal calls of "
            "one new 6-image request (claim + `creating` row, pacing turn, task id, 3 state "
            "changes, 6 kept files, 2 reads; no API traffic), and one request served again from "
            "kept files through `TaskRunner.text_to_image` (no API call). PostgreSQL "
            f"{'15 on 127.0.0.1, fsync on' if durable else 'given by GROK_IMAGINE_TEST_PG_URL'}"
            "; SQLite in WAL mode with synchronous=FULL on the same disk. Round trips are "
            "counted statements (psycopg `Connection.execute`)."
        ),
    )
    result.figures += [
        Figure("PG extra per new request (median)", extra_new * 1000, "ms"),
        Figure("PG extra per served-again request (median)", extra_reused * 1000, "ms"),
        Figure("PG round trips per new request", trips.get("new", 0), "req"),
    ]
    rows = []
    for label, table, key in (("new request", s_new, "new"), ("served again", s_reused, "reused")):
        rows.append(
            [
                label,
                f"{table['SQLite'].p50 * 1000:.2f} ms",
                f"{table['PostgreSQL'].p50 * 1000:.2f} ms",
                f"{table['PostgreSQL'].p95 * 1000:.2f} ms",
                str(trips.get(key, 0)),
            ]
        )
    result.details += markdown_table(
        ["journal work of", "SQLite p50", "PostgreSQL p50", "PostgreSQL p95", "PG round trips"],
        rows,
    )
    result.data = {"new_s": new, "reused_s": reused, "round_trips": trips}
    return result


def _jpeg() -> bytes:
    """A small real JPEG (the file store keeps only files that decode)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(out, "JPEG")
    return out.getvalue()


def _no_client() -> Any:
    raise AssertionError("a request served from kept files must not build an API client")
