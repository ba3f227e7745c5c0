"""The Grok Imagine panel's routes: listing, paging, thumbnails, resolve, the limit, bad input.

The real aiohttp handlers run in an ``aiohttp.test_utils`` server on 127.0.0.1 over a real journal
and kept files that the runner filled from the sandbox (no ComfyUI).
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest
from support import submodule
from support.api_names import public_api
from support.journal_views import kept_paths
from support.keys import TEST_KEY
from support.status_text import catalog, english_words, render, without_facts

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from PIL import Image  # noqa: E402

api = public_api()
journal_mod = submodule("journal")
models = submodule("api.models")
panel_routes = submodule("nodes.panel_routes")
spend = submodule("journal.spend_limit")

PROMPT = "a glass greenhouse in the rain, " + "very " * 60 + "detailed"
P = panel_routes.PREFIX


@pytest.fixture
def panel(tmp_path, sandbox):
    """A runner on a fresh journal and file store, and the panel routes over it."""
    settings = api.Settings(api_key=TEST_KEY, base_url=sandbox.base_url, read_timeout=0.3)
    runner = journal_mod.TaskRunner(
        lambda: api.GrokClient(settings, poll=api.PollSchedule().scaled(0.05)),
        journal=journal_mod.Journal(tmp_path / "journal.sqlite"),
        files=journal_mod.FileStore(tmp_path / "files"),
    )
    environ: dict[str, str] = {}
    context = panel_routes.PanelContext(
        lambda: runner, lambda: tmp_path / "user" / spend.SETTINGS_FILE_NAME, environ
    )
    routes = panel_routes.PanelRoutes(lambda: context)
    yield runner, routes, environ
    runner.journal.close()


def serve(routes, scenario):
    async def main():
        table = web.RouteTableDef()
        panel_routes.add_routes(table, routes)
        app = web.Application()
        app.add_routes(table)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


async def get_json(client, path):
    response = await client.get(path)
    body = await response.json()
    assert TEST_KEY not in json.dumps(body)
    return response.status, body


async def post(client, path, payload=None, *, data=None, headers=None):
    if data is None:
        data = json.dumps(payload)
        headers = {"Content-Type": "application/json", **(headers or {})}
    response = await client.post(path, data=data, headers=headers)
    body = await response.json()
    assert TEST_KEY not in json.dumps(body)
    return response.status, body


def creates(sandbox):
    return sandbox.ledger(TEST_KEY).creates


# -- listing and paging ---------------------------------------------------------------------------


def test_the_journal_is_listed_newest_first_with_totals(panel, sandbox):
    runner, routes, _ = panel
    first = runner.text_to_image(PROMPT, seed=1)
    runner.text_to_image("a fox", seed=1)
    runner.upscale(first.task_id)

    async def scenario(client):
        return await get_json(client, f"{P}/tasks")

    status, body = serve(routes, scenario)
    assert status == 200
    assert (body["total"], body["offset"], body["limit"]) == (3, 0, panel_routes.PAGE_DEFAULT)
    assert [row["kind"] for row in body["rows"]] == ["upscale", "text-to-image", "text-to-image"]
    up, fox, green = body["rows"]
    assert up["source_task_id"] == first.task_id and up["credits"] == models.UPSCALE_CREDITS
    assert green["task_id"] == first.task_id and green["state"] == "succeeded"
    assert green["model"] == models.TEXT_TO_IMAGE_MODEL and green["credits"] == 5
    assert green["prompt"] == PROMPT[: panel_routes.PROMPT_PREVIEW_CHARS]
    assert green["prompt_truncated"] and not fox["prompt_truncated"]
    assert abs(green["created_at"] - time.time()) < 60
    assert [f["thumbnail"] for f in green["files"]] == [
        f"{P}/thumbnail/{first.task_id}/{i}" for i in range(len(first.files))
    ]
    assert (body["spent_today"], body["spent_month"]) == (22, 22)
    assert body["daily_limit"] is None and body["env"] == spend.DAILY_LIMIT_ENV


def _fill(journal_path: Path, rows: int) -> None:
    """``rows`` finished tasks written straight into the journal file (a long history)."""
    now = time.time()
    with sqlite3.connect(journal_path) as conn:
        conn.executemany(
            "INSERT INTO requests (identity, model, prompt, seed, batch_index, task_id, state,"
            " credits, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, 'succeeded', 5, ?, ?)",
            [
                (f"id{i}", models.TEXT_TO_IMAGE_MODEL, f"prompt {i}", i, f"task{i:05d}", t, t)
                for i in range(rows)
                for t in [now - (rows - i)]
            ],
        )


def test_paging_through_ten_thousand_rows(panel, tmp_path):
    _, routes, _ = panel
    _fill(tmp_path / "journal.sqlite", 10_000)

    async def scenario(client):
        pages, took = [], []
        for offset in (0, 5000, 9950, 9990, 10_000):
            began = time.perf_counter()
            pages.append(await get_json(client, f"{P}/tasks?offset={offset}&limit=50"))
            took.append(time.perf_counter() - began)
        return pages, took

    pages, took = serve(routes, scenario)
    assert all(status == 200 and body["total"] == 10_000 for status, body in pages)
    assert [len(body["rows"]) for _, body in pages] == [50, 50, 50, 10, 0]
    assert pages[0][1]["rows"][0]["task_id"] == "task09999"  # newest first
    assert pages[2][1]["rows"][-1]["task_id"] == "task00000"
    ids = [row["id"] for row in pages[0][1]["rows"]]
    assert ids == sorted(ids, reverse=True)
    print(f"page times with 10,000 rows: {', '.join(f'{t * 1000:.1f} ms' for t in took)}")


@pytest.mark.parametrize(
    "query",
    ["offset=-1", "offset=abc", "limit=0", f"limit={panel_routes.PAGE_MAX + 1}", "limit=1.5",
     "offset=1e3", "offset=" + "9" * 30],
)  # fmt: skip
def test_bad_paging_is_a_one_line_400(panel, query):
    _, routes, _ = panel

    async def scenario(client):
        return await get_json(client, f"{P}/tasks?{query}")

    status, body = serve(routes, scenario)
    assert status == 400 and "\n" not in body["error"] and "whole number" in body["error"]


# -- thumbnails, kept files, traversal ------------------------------------------------------------


def test_thumbnails_and_kept_files_are_served(panel):
    runner, routes, _ = panel
    result = runner.text_to_image("a fox", seed=2)

    async def scenario(client):
        thumb = await client.get(f"{P}/thumbnail/{result.task_id}/0")
        full = await client.get(f"{P}/file/{result.task_id}/1")
        return thumb.status, thumb.content_type, await thumb.read(), full.status, await full.read()

    status, kind, thumb, full_status, full = serve(routes, scenario)
    assert (status, kind, full_status) == (200, "image/jpeg", 200)
    with Image.open(io.BytesIO(thumb)) as image:
        assert max(image.size) <= panel_routes.THUMBNAIL_PX
    assert full == result.files[1].read_bytes()


def test_nothing_outside_the_kept_files_folder_is_served(panel, tmp_path):
    runner, routes, _ = panel
    result = runner.text_to_image("a fox", seed=3)
    secret = tmp_path / "outside.jpg"
    secret.write_bytes(result.files[0].read_bytes())
    (tmp_path / "files" / "linked").mkdir()
    (tmp_path / "files" / "linked" / "0.jpg").symlink_to(secret)  # a link out of the folder
    (tmp_path / "files" / "dirlink").symlink_to(tmp_path)  # a task folder that is a link out
    (tmp_path / "0.jpg").write_bytes(secret.read_bytes())
    attempts = [
        "/file/..%2Foutside.jpg/0",
        "/file/..%2F..%2Fetc%2Fpasswd/0",
        "/file/../outside.jpg",
        "/file/%2E%2E/0",
        "/file/.hidden/0",
        "/file/linked/0",
        "/file/dirlink/0",
        "/thumbnail/linked/0",
        f"/file/{result.task_id}/-1",
        f"/file/{result.task_id}/0.jpg",
        f"/file/{result.task_id}/99",
        f"/file/{result.task_id}/{'9' * 40}",
        "/file/nosuchtask/0",
        "/file/journal.sqlite/0",
        "/thumbnail/%00/0",
    ]

    async def scenario(client):
        answers = []
        for path in attempts:
            response = await client.get(P + path)
            answers.append((path, response.status, await response.read()))
        return answers

    for path, status, body in serve(routes, scenario):
        assert status == 404, (path, status)
        assert secret.read_bytes() not in body and b"root:" not in body


def test_a_kept_file_that_is_not_a_picture_is_refused_in_one_line(panel):
    runner, routes, _ = panel
    result = runner.text_to_image("a fox", seed=4)
    result.files[0].write_bytes(b"not an image at all")

    async def scenario(client):
        return await get_json(client, f"{P}/thumbnail/{result.task_id}/0")

    status, body = serve(routes, scenario)
    assert status == 415 and "cannot be shown" in body["error"]


# -- resolving an uncertain create ----------------------------------------------------------------


def _uncertain(runner, sandbox, seed):
    known = set(sandbox.task_ids())
    sandbox.faults.create_response_delay = 1.0
    with pytest.raises(api.errors.UncertainCreateError) as caught:
        runner.text_to_image("a lost heron", seed=seed)
    deadline = time.monotonic() + 30
    while not set(sandbox.task_ids()) - known:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sandbox.faults.create_response_delay = 0.0
    (task_id,) = set(sandbox.task_ids()) - known
    return caught.value.entry.id, task_id


def test_resolve_with_the_dashboard_task_id_keeps_its_images_free(panel, sandbox):
    runner, routes, _ = panel
    entry_id, task_id = _uncertain(runner, sandbox, seed=1)
    paid = creates(sandbox)

    async def scenario(client):
        unknown = await post(client, f"{P}/resolve", {"entry": entry_id, "task_id": "nosuch123"})
        done = await post(client, f"{P}/resolve", {"entry": entry_id, "task_id": task_id})
        again = await post(client, f"{P}/resolve", {"entry": entry_id, "not_created": True})
        listed = await get_json(client, f"{P}/tasks")
        return unknown, done, again, listed

    unknown, done, again, listed = serve(routes, scenario)
    assert unknown[0] == 404
    status, body = done
    assert status == 200, body
    row = body["row"]
    assert (row["state"], row["task_id"], row["credits"]) == ("succeeded", task_id, 5)
    assert len(row["files"]) == len(kept_paths(runner.files, task_id)) > 0
    assert creates(sandbox) == paid  # fetching the found task was free
    assert again[0] == 409 and "only an uncertain create" in again[1]["error"]
    assert listed[1]["rows"][0]["task_id"] == task_id


def test_an_unknown_task_id_leaves_the_uncertain_row_as_it_was(panel, sandbox):
    runner, routes, _ = panel
    entry_id, _ = _uncertain(runner, sandbox, seed=2)

    async def scenario(client):
        return await post(client, f"{P}/resolve", {"entry": entry_id, "task_id": "nosuch123"})

    status, body = serve(routes, scenario)
    assert status == 404 and "not found" in body["error"].lower()
    row = runner.journal.entry(entry_id)
    assert (row.state, row.task_id) == ("uncertain", None)


def test_resolve_as_not_created_frees_its_credits(panel, sandbox):
    runner, routes, _ = panel
    entry_id, _ = _uncertain(runner, sandbox, seed=3)

    async def scenario(client):
        before = await get_json(client, f"{P}/tasks")
        done = await post(client, f"{P}/resolve", {"entry": entry_id, "not_created": True})
        after = await get_json(client, f"{P}/tasks")
        return before, done, after

    before, done, after = serve(routes, scenario)
    assert before[1]["spent_today"] == 5 and before[1]["rows"][0]["state"] == "uncertain"
    assert done[0] == 200 and done[1]["row"]["state"] == "rejected"
    assert done[1]["row"]["credits"] == 0 and after[1]["spent_today"] == 0


def test_a_create_waiting_for_its_turn_is_listed_as_waiting_and_counted(panel, sandbox):
    """A create waiting for its turn (pacing) is a row of its own state: listed, its credits
    set aside like a create's, and not offered to resolve (nothing was sent)."""
    runner, routes, _ = panel
    runner.journal.rate = submodule("journal.pacing").CreateRate(1, 30.0)
    for seed in (1, 2):
        identity = journal_mod.RequestIdentity.text_to_image("a fox", seed=seed)
        with runner.journal.claim(identity) as claim:
            entry = claim.start_create()
        runner.journal.create_turn(entry)

    async def scenario(client):
        listed = await get_json(client, f"{P}/tasks")
        resolve = await post(client, f"{P}/resolve", {"entry": entry.id, "not_created": True})
        return listed, resolve

    (status, body), (refused, answer) = serve(routes, scenario)
    assert status == 200 and [row["state"] for row in body["rows"]] == ["waiting", "creating"]
    assert body["spent_today"] == 10
    assert refused == 409 and "is waiting" in answer["error"]
    assert runner.journal.entry(entry.id).state == "waiting" and creates(sandbox) == 0


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"entry": 1}, 400),
        ({"entry": "1", "not_created": True}, 400),
        ({"entry": True, "not_created": True}, 400),
        ({"entry": 0, "not_created": True}, 400),
        ({"entry": 1, "not_created": False}, 400),
        ({"entry": 1, "task_id": "../../etc/passwd"}, 400),
        ({"entry": 1, "task_id": ""}, 400),
        ({"entry": 1, "task_id": 5}, 400),
        ({"entry": 1, "task_id": "abc", "not_created": True}, 400),
        ([1, 2], 400),
        ({"entry": 12345, "not_created": True}, 409),
    ],
)
def test_resolve_refuses_bad_input_in_one_line(panel, payload, status):
    _, routes, _ = panel

    async def scenario(client):
        return await post(client, f"{P}/resolve", payload)

    got, body = serve(routes, scenario)
    assert got == status and body["error"] and "\n" not in body["error"]
    # beside the English line, the same as message keys and facts, worded in the UI's language
    assert render(body["message"]) == body["error"]
    assert english_words(render(without_facts(body["message"]), catalog("zh"))) == []


def test_bodies_must_be_small_json(panel):
    _, routes, _ = panel

    async def scenario(client):
        form = await post(
            client, f"{P}/limit", data="limit=5", headers={"Content-Type": "text/plain"}
        )
        broken = await post(
            client, f"{P}/limit", data="{", headers={"Content-Type": "application/json"}
        )
        big = await post(client, f"{P}/resolve", {"entry": 1, "task_id": "x" * 10_000})
        return form, broken, big

    form, broken, big = serve(routes, scenario)
    assert form[0] == 415 and broken[0] == 400 and big[0] == 413


# -- the limit and the prices ---------------------------------------------------------------------


def test_the_daily_limit_is_stored_beside_the_key_file_and_the_environment_wins(panel, tmp_path):
    _, routes, environ = panel
    settings_file = tmp_path / "user" / spend.SETTINGS_FILE_NAME

    async def scenario(client):
        answers = [await get_json(client, f"{P}/limit")]
        answers.append(await post(client, f"{P}/limit", {"limit": 30}))
        environ[spend.DAILY_LIMIT_ENV] = "7"
        answers.append(await get_json(client, f"{P}/tasks"))
        del environ[spend.DAILY_LIMIT_ENV]
        answers.append(await post(client, f"{P}/limit", {"limit": None}))
        for bad in ({"limit": -1}, {"limit": "5"}, {"limit": True}, {"limit": 2.5}, {},
                    {"limit": 5, "key": "x"}):  # fmt: skip
            answers.append(await post(client, f"{P}/limit", bad))
        return answers

    answers = serve(routes, scenario)
    assert answers[0] == (
        200,
        {"daily_limit": None, "limit_source": None, "env": spend.DAILY_LIMIT_ENV},
    )
    assert answers[1][1]["daily_limit"] == 30 and answers[1][1]["limit_source"] == "settings"
    assert (answers[2][1]["daily_limit"], answers[2][1]["limit_source"]) == (7, "env")
    assert answers[3][1]["daily_limit"] is None
    assert json.loads(settings_file.read_text()) == {}
    assert all(status == 400 for status, _ in answers[4:])


def test_prices_come_from_the_one_price_list(panel):
    _, routes, _ = panel

    async def scenario(client):
        return await get_json(client, f"{P}/prices")

    status, body = serve(routes, scenario)
    assert status == 200
    assert body["nodes"] == {
        "GrokImagineTextToImage": {
            "credits": models.TEXT_TO_IMAGE_CREDITS, "per": "task", "counted_by": "parallel_tasks"
        },
        "GrokImagineUpscale": {
            "credits": models.UPSCALE_CREDITS, "per": "task id", "counted_by": "task_id"
        },
        "GrokImagineLoadTask": {"credits": 0, "per": None, "counted_by": None},
    }  # fmt: skip
