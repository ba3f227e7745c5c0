"""The sandbox speaks the seed's API: task life, files, auth, credits and the ledger."""

from __future__ import annotations

import time

import pytest
import requests
from support import submodule
from support.keys import TEST_KEY
from support.sandbox_http import (
    CREATE,
    WAIT_LIMIT_S,
    auth,
    create,
    decode,
    status,
    wait_done,
    wait_until,
)

sandbox_module = submodule("sandbox")

# -- create and status ---------------------------------------------------------------------------


def test_create_answers_the_seed_envelope(sandbox):
    response = create(sandbox)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 200 and body["message"] == "success"
    assert set(body["data"]) == {"task_id", "status"}
    assert body["data"]["status"] == "IN_PROGRESS"
    assert body["data"]["task_id"].endswith("_grok")


def test_a_new_task_is_pending(sandbox_factory):
    sb = sandbox_factory(generation_time=30.0)  # queued for the first fifth: six seconds
    task_id = create(sb).json()["data"]["task_id"]
    data = status(sb, task_id).json()["data"]
    assert data["status"] == "pending" and data["output"]["image_urls"] == []
    assert sb.task_info(task_id).state == "queued"


def test_a_started_task_is_in_progress(sandbox_factory):
    sb = sandbox_factory(generation_time=0.05)
    sb.faults.stuck = True  # queued for 0.01 s, then running for ever
    task_id = create(sb).json()["data"]["task_id"]
    wait_until(lambda: status(sb, task_id).json()["data"]["status"] == "IN_PROGRESS", "running")
    assert sb.task_info(task_id).state == "running"


def test_listed_generation_times_are_taken_in_turn(sandbox_factory):
    sb = sandbox_factory(generation_time=(3.0, 10.0), generation_times=(0.05, 0.15))
    ids = [create(sb).json()["data"]["task_id"] for _ in range(3)]
    for task_id in ids:
        wait_done(sb, task_id)
    took = [sb.task_info(i).done_at - sb.task_info(i).created_at for i in ids]
    assert took == pytest.approx([0.05, 0.15, 0.05])
    with pytest.raises(ValueError, match="generation_times"):
        sandbox_module.SandboxConfig(generation_times=(1.0, -1.0))


def test_task_statuses_only_move_forward(sandbox_factory):
    sb = sandbox_factory(generation_time=0.3)
    task_id = create(sb).json()["data"]["task_id"]
    seen = []
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not seen or seen[-1] != "completed":
        assert time.monotonic() < deadline
        data = status(sb, task_id).json()["data"]
        if not seen or seen[-1] != data["status"]:
            seen.append(data["status"])
        time.sleep(0.01)
    order = ["pending", "IN_PROGRESS", "completed"]
    assert seen == sorted(seen, key=order.index) and len(set(seen)) == len(seen)
    assert data["progress"] == 100
    assert len(data["output"]["image_urls"]) == 6
    info = sb.task_info(task_id)
    assert info.state == "completed" and info.done_at is not None
    assert info.status_reads >= len(seen)


def test_unknown_and_foreign_tasks_are_404(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 100, "sk-other": 100})
    task_id = create(sb).json()["data"]["task_id"]
    assert status(sb, "nosuchtask_grok").status_code == 404
    foreign = status(sb, task_id, key="sk-other")
    assert foreign.status_code == 404
    assert foreign.json()["error"]["type"] == "not_found"


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("1:1", (1024, 1024)),
        ("3:2", (1296, 864)),
        ("2:3", (864, 1296)),
        ("16:9", (1408, 768)),
        ("9:16", (768, 1408)),
    ],
)
def test_images_are_real_and_sized_by_aspect_ratio(sandbox_factory, ratio, size):
    sb = sandbox_factory(images_per_task=1, generation_time=0.05)
    task_id = create(sb, {"prompt": "a red fox", "aspect_ratio": ratio}).json()["data"]["task_id"]
    (url,) = wait_done(sb, task_id)["output"]["image_urls"]
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    image = decode(response.content)
    assert image.format == "JPEG" and image.size == size


def test_images_come_from_the_prompt_and_differ_per_index_and_task(sandbox_factory):
    sb = sandbox_factory(images_per_task=2, image_format="PNG", generation_time=0.05)
    first = wait_done(sb, create(sb, {"prompt": "blue whale"}).json()["data"]["task_id"])
    again = wait_done(sb, create(sb, {"prompt": "blue whale"}).json()["data"]["task_id"])
    other = wait_done(sb, create(sb, {"prompt": "green frog"}).json()["data"]["task_id"])
    blobs = [requests.get(u, timeout=10).content for u in first["output"]["image_urls"]]
    assert all(decode(b).format == "PNG" for b in blobs)
    assert blobs[0] != blobs[1]  # each image of a task is its own
    refetched = requests.get(first["output"]["image_urls"][0], timeout=10).content
    assert refetched == blobs[0]  # one task's image is the same on every download
    same_prompt = requests.get(again["output"]["image_urls"][0], timeout=10).content
    assert same_prompt != blobs[0]  # another task of the same prompt: its task id is drawn in
    different = requests.get(other["output"]["image_urls"][0], timeout=10).content
    assert decode(different).getpixel((5, 5)) != decode(blobs[0]).getpixel((5, 5))


def test_an_upscale_is_its_source_at_twice_the_size_under_a_banner(sandbox_factory):
    sb = sandbox_factory(images_per_task=1, image_format="PNG", generation_time=0.05)
    source_id = create(sb, {"prompt": "blue whale"}).json()["data"]["task_id"]
    (source_url,) = wait_done(sb, source_id)["output"]["image_urls"]
    body = {"model": "grok-imagine/upscale", "task_id": source_id}
    upscale_id = create(sb, body).json()["data"]["task_id"]
    (url,) = wait_done(sb, upscale_id)["output"]["image_urls"]
    source = decode(requests.get(source_url, timeout=10).content).convert("RGB")
    upscale = decode(requests.get(url, timeout=10).content).convert("RGB")
    assert upscale.size == (source.width * 2, source.height * 2)
    assert upscale.getpixel((upscale.width - 2, 2)) == (255, 255, 255)  # the banner
    spot = (source.width - 3, source.height // 2)
    scaled, original = upscale.resize(source.size).getpixel(spot), source.getpixel(spot)
    assert max(abs(a - b) for a, b in zip(scaled, original, strict=True)) < 40  # same picture


def test_files_come_from_another_origin_without_the_key(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    urls = wait_done(sandbox, task_id)["output"]["image_urls"]
    assert all(u.startswith(sandbox.file_base_url + "/files/") for u in urls)
    assert sandbox.file_base_url != sandbox.base_url
    assert requests.get(urls[0], timeout=10).status_code == 200
    requests.get(urls[1], headers=auth(), timeout=10)
    seen = sandbox.file_requests
    assert [r.had_authorization for r in seen] == [False, True]
    assert seen[0].path.endswith("/0.jpg")


def test_single_origin_serves_files_from_the_api_port(sandbox_factory):
    sb = sandbox_factory(separate_file_host=False)
    assert sb.file_base_url == sb.base_url
    urls = wait_done(sb, create(sb).json()["data"]["task_id"])["output"]["image_urls"]
    assert urls[0].startswith(sb.base_url) and requests.get(urls[0], timeout=10).status_code == 200


def test_files_expire_with_410(sandbox_factory):
    sb = sandbox_factory(file_expiry=0.2, generation_time=0.05)
    urls = wait_done(sb, create(sb).json()["data"]["task_id"])["output"]["image_urls"]
    deadline = time.monotonic() + WAIT_LIMIT_S
    while (code := requests.get(urls[0], timeout=10).status_code) == 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert code == 410


def test_unknown_files_are_404(sandbox_factory):
    # Long enough that the task is surely not completed while the first four are asked for (the
    # suite's 0.05-0.15 s task finished before the first GET on a loaded 2-core machine).
    sandbox = sandbox_factory(generation_time=2.0)
    task_id = create(sandbox).json()["data"]["task_id"]
    base = sandbox.file_base_url + "/files/"
    for path in (f"{task_id}/0.jpg", f"{task_id}/x.jpg", "nothing/0.jpg", "junk"):
        assert requests.get(base + path, timeout=10).status_code == 404  # not completed / bad
    urls = wait_done(sandbox, task_id)["output"]["image_urls"]
    assert requests.get(urls[0].replace("/0.jpg", "/6.jpg"), timeout=10).status_code == 404
    assert requests.get(urls[0].replace(".jpg", ".png"), timeout=10).status_code == 404


# -- upscale -------------------------------------------------------------------------------------


def test_upscale_doubles_the_first_image(sandbox_factory):
    sb = sandbox_factory(generation_time=0.05)
    source = create(sb, {"prompt": "a castle", "aspect_ratio": "3:2"}).json()["data"]["task_id"]
    wait_done(sb, source)
    response = create(sb, {"model": "grok-imagine/upscale", "task_id": source})
    assert response.status_code == 200
    (url,) = wait_done(sb, response.json()["data"]["task_id"])["output"]["image_urls"]
    assert decode(requests.get(url, timeout=10).content).size == (2592, 1728)
    assert sb.ledger(TEST_KEY).credits_charged == 5 + 12


def test_upscale_needs_a_completed_text_to_image_task_of_the_same_key(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 100, "sk-other": 100}, generation_time=5.0)
    upscale = "grok-imagine/upscale"
    running = create(sb).json()["data"]["task_id"]
    assert create(sb, {"model": upscale}).status_code == 400
    assert create(sb, {"model": upscale, "task_id": "nosuch_grok"}).status_code == 404
    assert create(sb, {"model": upscale, "task_id": running}, key="sk-other").status_code == 404
    not_done = create(sb, {"model": upscale, "task_id": running})
    assert not_done.status_code == 400 and "not completed" in not_done.json()["error"]["message"]
    assert sb.ledger(TEST_KEY).creates == 1 and sb.ledger("sk-other").creates == 0


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": 42},
        {"prompt": "x" * 5001},
        {"prompt": "ok", "model": "grok-imagine/video"},
        {"prompt": "ok", "model": ["list"]},
        {"prompt": "ok", "aspect_ratio": "4:3"},
        {"prompt": "ok", "aspect_ratio": ["1:1"]},
        ["not", "an", "object"],
    ],
)
def test_invalid_creates_are_400_and_free(sandbox, body):
    response = create(sandbox, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400 and error["type"] == "invalid_request" and error["message"]
    assert sandbox.ledger(TEST_KEY).creates == 0


def test_broken_json_body_is_400(sandbox):
    response = requests.post(sandbox.base_url + CREATE, data=b"{nope", headers=auth(), timeout=10)
    assert response.status_code == 400


def test_prompt_of_exactly_5000_characters_is_accepted(sandbox):
    assert create(sandbox, {"prompt": "y" * 5000}).status_code == 200


def test_unknown_endpoint_and_wrong_method(sandbox):
    assert requests.get(sandbox.base_url + "/api/v1/nothing", timeout=10).status_code == 404
    assert requests.get(sandbox.base_url + CREATE, headers=auth(), timeout=10).status_code == 405


# -- auth and credits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": TEST_KEY},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TEST_KEY}"},
    ],
)
def test_auth_is_required(sandbox, headers):
    response = requests.post(
        sandbox.base_url + CREATE, json={"prompt": "p"}, headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert TEST_KEY not in response.text
    task_id = create(sandbox).json()["data"]["task_id"]
    read = requests.get(f"{sandbox.base_url}/api/v1/tasks/{task_id}", headers=headers, timeout=10)
    assert read.status_code == 401


def test_credits_run_out_with_402(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 12})
    assert create(sb).status_code == 200
    assert create(sb).status_code == 200
    refused = create(sb)
    assert refused.status_code == 402
    assert refused.json()["error"]["type"] == "insufficient_credits"
    assert sb.ledger(TEST_KEY) == sandbox_module.Ledger(
        creates=2, credits_charged=10, refunds=0, balance=2
    )
    assert sb.create_requests == 3


def test_ledger_counts_each_key_apart(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 1000, "sk-two": 50})
    create(sb)
    create(sb, key="sk-two")
    create(sb, key="sk-two")
    assert sb.ledger(TEST_KEY).creates == 1 and sb.ledger(TEST_KEY).balance == 995
    assert sb.ledger("sk-two").creates == 2 and sb.ledger("sk-two").balance == 40
    with pytest.raises(KeyError):
        sb.ledger("sk-never")


def test_key_stays_out_of_reprs(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    assert TEST_KEY not in repr(sandbox)
    assert TEST_KEY not in repr(sandbox.config)
    assert TEST_KEY not in repr(sandbox.task_info(task_id))
    assert sandbox.task_info(task_id).key == TEST_KEY


# -- lifecycle -----------------------------------------------------------------------------------


def test_binds_127_0_0_1_on_a_free_port(sandbox):
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    assert not sandbox.base_url.endswith(":0")


def test_stop_is_idempotent_and_frees_the_port(sandbox_factory):
    sb = sandbox_factory()
    url = sb.base_url
    sb.stop()
    sb.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/api/v1/tasks/x", timeout=5)
    with pytest.raises(RuntimeError):
        sb.start()
