"""The Settings entry's key route: stores the key 0600, answers masked, never leaks the key.

Runs the real aiohttp handlers in an ``aiohttp.test_utils`` server on 127.0.0.1 (no ComfyUI);
skipped cleanly where aiohttp is not installed (ComfyUI always has it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
from pathlib import Path

import pytest
from support import submodule
from support.status_text import render

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

settings_route = submodule("nodes.settings_route")
server_routes = submodule("nodes.server_routes")

KEY = "sk-live-0123456789abcdefWXYZ"
OTHER_KEY = "sk-other-key-9876"


def run_against_route(route, scenario):
    """Serve the route's two handlers on 127.0.0.1 and run ``scenario(client)`` against them."""

    async def main():
        app = web.Application()
        app.router.add_get(settings_route.ROUTE_PATH, route.handle_get)
        app.router.add_post(settings_route.ROUTE_PATH, route.handle_post)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


async def post_json(client, payload):
    """-> (HTTP status, JSON body, Cache-Control header)."""
    response = await client.post(settings_route.ROUTE_PATH, json=payload)
    return response.status, await response.json(), response.headers.get("Cache-Control")


async def get_status(client):
    response = await client.get(settings_route.ROUTE_PATH)
    assert response.status == 200
    return await response.json()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "user" / "grok_imagine" / "api_key"


@pytest.fixture
def route(key_file):
    return settings_route.KeyRoute(key_file=key_file, environ={})


def test_nothing_stored_reports_not_set(route):
    status = run_against_route(route, get_status)
    assert status == {"set": False, "source": None, "last4": None, "file_set": False}


def test_post_stores_key_0600_and_answers_masked(route, key_file):
    async def scenario(client):
        status, body, cache = await post_json(client, {"key": "  " + KEY + "\n"})
        return status, body, cache, await get_status(client)

    status, body, cache, later = run_against_route(route, scenario)
    assert status == 200
    assert body == {"set": True, "source": "file", "last4": "WXYZ", "file_set": True}
    assert later == body
    assert cache == "no-store"
    assert KEY not in json.dumps(body)
    assert key_file.read_text().strip() == KEY
    if os.name == "posix":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.parent.stat().st_mode) & 0o077 == 0
    assert [p.name for p in key_file.parent.iterdir()] == ["api_key"]  # no temp file left


def test_post_replaces_key_and_empty_key_deletes_file(route, key_file):
    async def scenario(client):
        await post_json(client, {"key": KEY})
        _, replaced, _ = await post_json(client, {"key": OTHER_KEY})
        assert key_file.read_text().strip() == OTHER_KEY
        _, removed, _ = await post_json(client, {"key": ""})
        _, removed_again, _ = await post_json(client, {"key": "   "})
        return replaced, removed, removed_again

    replaced, removed, removed_again = run_against_route(route, scenario)
    assert replaced["last4"] == "9876"
    assert removed == {"set": False, "source": None, "last4": None, "file_set": False}
    assert removed_again == removed
    assert not key_file.exists()


def test_environment_key_is_reported_as_env_and_wins_over_file(key_file):
    env_key = "sk-from-environment-abcd"
    route = settings_route.KeyRoute(key_file=key_file, environ={"APIINONE_API_KEY": env_key})

    async def scenario(client):
        before = await get_status(client)
        _, after_post, _ = await post_json(client, {"key": KEY})
        return before, after_post

    before, after_post = run_against_route(route, scenario)
    assert before == {"set": True, "source": "env", "last4": "abcd", "file_set": False}
    # The file is still written (it takes over if the variable goes away), but env wins.
    assert after_post == {"set": True, "source": "env", "last4": "abcd", "file_set": True}
    assert key_file.read_text().strip() == KEY


def test_short_environment_key_shows_no_tail(key_file):
    route = settings_route.KeyRoute(key_file=key_file, environ={"APIINONE_API_KEY": "sk-test"})
    status = run_against_route(route, get_status)
    assert status == {"set": True, "source": "env", "last4": None, "file_set": False}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"key": "sk-abc1"}, "too short"),
        ({"key": "x" * 600}, "too long"),
        ({"key": "sk-has space-inside"}, "space"),
        ({"key": "sk-tab\tinside-key"}, "space"),
        ({"key": "sk-ключ-non-ascii"}, "not plain ASCII"),
        ({"key": 12345678}, "must be text"),
        ({"key": None}, "must be text"),
        ({"api_key": KEY}, '{"key": "..."}'),
        ([KEY], '{"key": "..."}'),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(route, key_file, payload, fragment):
    async def scenario(client):
        response = await client.post(settings_route.ROUTE_PATH, json=payload)
        return response.status, await response.json()

    status, body = run_against_route(route, scenario)
    assert status == 400
    assert fragment in body["error"]
    assert set(body) == {"error", "message"}  # the line, and the same as message keys and facts
    assert render(body["message"]) == body["error"]
    assert not key_file.exists()
    secret = payload.get("key") if isinstance(payload, dict) else None
    if isinstance(secret, str):
        assert secret not in body["error"] and secret not in json.dumps(body)


def test_non_json_and_oversized_bodies_are_rejected(route, key_file):
    async def scenario(client):
        path = settings_route.ROUTE_PATH
        not_json = await client.post(path, data=KEY, headers={"Content-Type": "application/json"})
        form = await client.post(path, data={"key": KEY})  # a cross-site form could send this
        huge = await client.post(
            path,
            data=json.dumps({"key": KEY, "pad": "x" * 10_000}),
            headers={"Content-Type": "application/json"},
        )
        return [(r.status, (await r.json())["error"]) for r in (not_json, form, huge)]

    (s1, e1), (s2, e2), (s3, e3) = run_against_route(route, scenario)
    assert (s1, s2, s3) == (400, 415, 413)
    assert '{"key": "..."}' in e1
    assert "application/json" in e2
    assert "too large" in e3
    assert all(KEY not in e for e in (e1, e2, e3))
    assert not key_file.exists()


def test_key_never_reaches_the_logs(route, caplog):
    async def scenario(client):
        await post_json(client, {"key": KEY})
        await get_status(client)
        await client.post(settings_route.ROUTE_PATH, json={"key": KEY + " trailing words"})
        await post_json(client, {"key": ""})

    with caplog.at_level(logging.DEBUG):
        run_against_route(route, scenario)
    assert caplog.records, "saving and removing should be logged (without the key)"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert KEY not in logged
    assert KEY[-8:] not in logged


def test_unwritable_key_file_gives_a_readable_500(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # mkdir under a file fails, even for root
    route = settings_route.KeyRoute(key_file=blocker / "grok_imagine" / "api_key", environ={})

    async def scenario(client):
        response = await client.post(settings_route.ROUTE_PATH, json={"key": KEY})
        return response.status, await response.json()

    status, body = run_against_route(route, scenario)
    assert status == 500
    assert body["error"].startswith("Could not write the key file")
    assert KEY not in body["error"]


def test_status_and_errors_have_no_key_in_repr(route):
    status = route.store(KEY)
    assert KEY not in repr(status)
    with pytest.raises(settings_route.KeyRejected) as caught:
        settings_route.parse_body(json.dumps({"key": KEY + " and more"}).encode())
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


def test_register_is_a_no_op_outside_comfyui(monkeypatch):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert server_routes.register_if_in_comfyui() is False


def test_register_adds_every_route_once_and_a_request_reaches_the_key_route(monkeypatch, tmp_path):
    class FakePromptServer:
        instance = None

    FakePromptServer.instance = FakePromptServer()
    FakePromptServer.instance.routes = web.RouteTableDef()
    fake_server_module = type(sys)("server")
    fake_server_module.PromptServer = FakePromptServer
    monkeypatch.setitem(sys.modules, "server", fake_server_module)
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "api_key"))
    monkeypatch.delenv("APIINONE_API_KEY", raising=False)

    assert server_routes.register_if_in_comfyui() is True
    assert server_routes.register_if_in_comfyui() is True  # idempotent
    table = FakePromptServer.instance.routes
    assert sorted((r.method, r.path) for r in table) == sorted(
        (method, server_routes.PREFIX + path) for method, path, _, _ in server_routes.ROUTES
    )

    async def scenario():
        app = web.Application()
        app.add_routes(table)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            saved = await client.post(settings_route.ROUTE_PATH, json={"key": KEY})
            return saved.status, await saved.json()

    status, body = asyncio.run(scenario())
    assert status == 200 and body["last4"] == KEY[-4:]
    assert (tmp_path / "api_key").read_text().strip() == KEY


def test_server_module_without_prompt_server_instance_is_ignored(monkeypatch):
    class NotStarted:
        instance = None

    fake_server_module = type(sys)("server")
    fake_server_module.PromptServer = NotStarted
    monkeypatch.setitem(sys.modules, "server", fake_server_module)
    assert server_routes.register_if_in_comfyui() is False
