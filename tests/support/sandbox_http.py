"""Plain-HTTP helpers for the sandbox's own tests (the client is not under test there)."""

from __future__ import annotations

import io
import time
from typing import Any

import requests
from PIL import Image

from .keys import TEST_KEY

CREATE = "/api/v1/images/generations"
WAIT_LIMIT_S = 30.0  # generous bound for anything that waits on the sandbox's clock


def auth(key: str = TEST_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(sb: Any, body: Any = None, key: str = TEST_KEY) -> requests.Response:
    payload = {"prompt": "a lighthouse at dusk"} if body is None else body
    return requests.post(sb.base_url + CREATE, json=payload, headers=auth(key), timeout=10)


def status(sb: Any, task_id: str, key: str = TEST_KEY) -> requests.Response:
    return requests.get(f"{sb.base_url}/api/v1/tasks/{task_id}", headers=auth(key), timeout=10)


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def wait_done(sb: Any, task_id: str, key: str = TEST_KEY) -> dict:
    """The default-shape ``data`` of the task once it completed or failed."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while True:
        data = status(sb, task_id, key).json()["data"]
        if data["status"] in ("completed", "failed"):
            return data
        assert time.monotonic() < deadline, f"task {task_id} never finished"
        time.sleep(0.01)


def decode(blob: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(blob))
    image.load()
    return image
