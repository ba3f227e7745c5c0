"""Every fault switch does what it says, once per request, and never charges twice."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time

import pytest
import requests
from PIL import Image
from support import submodule
from support.keys import TEST_KEY
from support.sandbox_http import (
    WAIT_LIMIT_S,
    auth,
    create,
    decode,
    status,
    wait_done,
    wait_until,
)

sandbox_module = submodule("sandbox")


def completed_urls(sb, prompt: str = "a quiet harbour") -> list[str]:
    task_id = create(sb, {"prompt": prompt}).json()["data"]["task_id"]
    return wait_done(sb, task_id)["output"]["image_urls"]


# -- task outcomes -------------------------------------------------------------------------------


def test_failed_tasks_are_refunded(sandbox):
    sandbox.faults.failure_rate = 1.0
    task_id = create(sandbox).json()["data"]["task_id"]
    data = wait_done(sandbox, task_id)
    assert data["status"] == "failed" and data["output"]["image_urls"] == []
    assert "Generation failed" in data["error"]["message"]
    assert sandbox.ledger(TEST_KEY) == sandbox_module.Ledger(
        creates=1, credits_charged=0, refunds=5, balance=1000
    )
    info = sandbox.task_info(task_id)
    assert info.state == "failed" and info.refunded and info.fail_reason


def test_refund_happens_before_anyone_sees_the_failure(sandbox_factory):
    sb = sandbox_factory(generation_time=0.05)
    sb.faults.failure_rate = 1.0
    task_id = create(sb).json()["data"]["task_id"]
    # The ledger alone settles the task: no status read has happened yet.
    wait_until(lambda: sb.ledger(TEST_KEY).balance == 1000, "the refund")
    assert status(sb, task_id).json()["data"]["status"] == "failed"


def test_failure_rate_is_a_fraction_drawn_from_the_seeded_rng(sandbox_factory):
    outcomes = []
    for _ in range(2):
        sb = sandbox_factory(generation_time=0.0, images_per_task=1, seed=7)
        sb.faults.failure_rate = 0.5
        ids = [create(sb).json()["data"]["task_id"] for _ in range(20)]
        outcomes.append([wait_done(sb, task_id)["status"] for task_id in ids])
    assert outcomes[0] == outcomes[1]  # reproducible with a seed
    assert 0 < outcomes[0].count("failed") < 20


def test_moderation_word_fails_on_content_policy(sandbox):
    task_id = create(sandbox, {"prompt": "Something FORBIDDEN here"}).json()["data"]["task_id"]
    data = wait_done(sandbox, task_id)
    assert data["status"] == "failed"
    assert "content policy" in data["error"]["message"].lower()
    assert data["error"]["code"] == "content_policy_violation"
    assert sandbox.ledger(TEST_KEY).credits_charged == 0

    sandbox.faults.moderation_word = None
    task_id = create(sandbox, {"prompt": "Something FORBIDDEN here"}).json()["data"]["task_id"]
    assert wait_done(sandbox, task_id)["status"] == "completed"


def test_stuck_tasks_never_finish(sandbox_factory):
    sb = sandbox_factory(generation_time=0.05)
    sb.faults.stuck = True
    task_id = create(sb).json()["data"]["task_id"]
    sb.faults.stuck = False  # decided at create time: this task stays stuck
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # ten times its generation time
        data = status(sb, task_id).json()["data"]
        assert data["status"] in ("pending", "IN_PROGRESS")
        time.sleep(0.05)
    assert data["status"] == "IN_PROGRESS" and data["progress"] < 100
    assert wait_done(sb, create(sb).json()["data"]["task_id"])["status"] == "completed"


# -- injected HTTP errors ------------------------------------------------------------------------


def test_create_errors_are_answered_in_order_and_cost_nothing(sandbox):
    sandbox.faults.create_errors = [429, 500, 502, 503, 455]
    sandbox.faults.retry_after = 3
    answers = [create(sandbox) for _ in range(6)]
    assert [a.status_code for a in answers] == [429, 500, 502, 503, 455, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert "Retry-After" not in answers[1].headers
    assert all(a.json()["error"]["code"] == a.status_code for a in answers[:5])
    assert answers[4].json()["error"]["type"] == "service_unavailable"
    assert sandbox.create_requests == 6
    assert sandbox.ledger(TEST_KEY).creates == 1 and sandbox.faults.create_errors == []


def test_status_errors_are_answered_in_order_and_counted(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    sandbox.faults.status_errors = [503, 429, 455, 500]
    answers = [status(sandbox, task_id) for _ in range(5)]
    assert [a.status_code for a in answers] == [503, 429, 455, 500, 200]
    assert answers[1].headers["Retry-After"] == "1"
    assert sandbox.task_info(task_id).status_reads == 5


def test_each_injected_status_error_is_taken_exactly_once_under_concurrency(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    sandbox.faults.status_errors = [503] * 10
    codes: list[int] = []
    lock = threading.Lock()

    def read() -> None:
        with requests.Session() as session:
            for _ in range(5):
                code = session.get(
                    f"{sandbox.base_url}/api/v1/tasks/{task_id}", headers=auth(), timeout=10
                ).status_code
                with lock:
                    codes.append(code)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_LIMIT_S)
    assert len(codes) == 30
    assert codes.count(503) == 10 and codes.count(200) == 20


def test_malformed_json_then_recovery(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    sandbox.faults.malformed_json = 2
    for _ in range(2):
        broken = status(sandbox, task_id)
        assert broken.status_code == 200
        assert broken.headers["Content-Type"] == "application/json"
        with pytest.raises(ValueError):
            broken.json()
    assert status(sandbox, task_id).json()["data"]["task_id"] == task_id
    assert sandbox.faults.malformed_json == 0


def test_html_error_page(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    sandbox.faults.html_error = 1
    page = status(sandbox, task_id)
    assert page.status_code == 502 and page.headers["Content-Type"] == "text/html"
    assert "<html>" in page.text
    assert status(sandbox, task_id).status_code == 200


def test_error_in_body_with_http_200(sandbox):
    task_id = create(sandbox).json()["data"]["task_id"]
    sandbox.faults.error_in_body = 1
    answer = status(sandbox, task_id)
    assert answer.status_code == 200
    assert answer.json()["code"] == 500 and answer.json()["msg"]
    assert "data" not in answer.json() or answer.json()["data"] is None
    assert status(sandbox, task_id).json()["code"] == 200


def test_slow_create_answer_still_charges_once(sandbox):
    sandbox.faults.create_response_delay = 2.0
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            sandbox.base_url + "/api/v1/images/generations",
            json={"prompt": "p"},
            headers=auth(),
            timeout=(5, 0.2),
        )
    wait_until(lambda: sandbox.ledger(TEST_KEY).creates == 1, "the create to be taken")
    assert sandbox.ledger(TEST_KEY).credits_charged == 5
    assert sandbox.create_requests == 1


def test_faults_refuse_unknown_names():
    faults = sandbox_module.Faults()
    with pytest.raises(ValueError, match="response_shape"):
        faults.response_shape = "nope"
    with pytest.raises(ValueError, match="download"):
        faults.download = "nope"
    with pytest.raises(ValueError):
        sandbox_module.Faults(failure_rate=2.0)
    assert set(sandbox_module.DOWNLOAD_FAULTS) >= {
        "slow",
        "truncate",
        "not_image",
        "oversized",
        "bomb",
        "redirect_scheme",
        "expired",
        "forbidden",
        "missing",
    }


# -- rate limit ----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 1000, "sk-other": 1000}, rate_limit=(2, 30.0))
    assert [create(sb).status_code for _ in range(2)] == [200, 200]
    limited = create(sb)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert sb.ledger(TEST_KEY).creates == 2  # the refused create is free
    assert sb.ledger(TEST_KEY).rate_limited == 1  # and counted, so pacing can be checked
    assert create(sb, key="sk-other").status_code == 200  # per key
    assert sb.ledger("sk-other").rate_limited == 0


def test_rate_limit_window_slides(sandbox_factory):
    sb = sandbox_factory(rate_limit=(1, 0.3))
    assert create(sb).status_code == 200
    wait_until(lambda: create(sb).status_code == 200, "the window to slide")
    assert sb.ledger(TEST_KEY).creates == 2


# -- downloads -----------------------------------------------------------------------------------


def test_slow_download_arrives_whole(sandbox):
    urls = completed_urls(sandbox)
    whole = requests.get(urls[0], timeout=10).content
    sandbox.faults.download = "slow"
    sandbox.faults.drip_delay = 0.01
    sandbox.faults.drip_chunk = 16 * 1024
    assert requests.get(urls[0], timeout=10).content == whole


def test_slow_download_trips_a_read_timeout(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "slow"
    sandbox.faults.drip_delay = 5.0
    sandbox.faults.drip_chunk = 100
    with pytest.raises(requests.ConnectionError):  # requests reports a body read timeout so
        response = requests.get(urls[0], timeout=(5, 0.3), stream=True)
        for _ in response.iter_content(1024):
            pass


def test_truncated_download_is_shorter_than_announced(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "truncate"
    response = requests.get(urls[0], timeout=10, stream=True)
    announced = int(response.headers["Content-Length"])
    received = bytearray()
    with pytest.raises(requests.RequestException):
        for chunk in response.iter_content(8192):
            received += chunk
    assert 0 < len(received) < announced


def test_not_an_image_lies_about_its_type(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "not_image"
    response = requests.get(urls[0], timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
    with pytest.raises(Exception):  # noqa: B017 - PIL raises UnidentifiedImageError
        decode(response.content)


@pytest.mark.parametrize("fault", ["oversized", "oversized_unannounced"])
def test_oversized_download(sandbox, fault):
    urls = completed_urls(sandbox)
    sandbox.faults.download = fault
    sandbox.faults.oversized_bytes = 3 * 1024 * 1024
    response = requests.get(urls[0], timeout=10, stream=True)
    if fault == "oversized":
        assert response.headers["Content-Length"] == str(3 * 1024 * 1024)
    else:
        assert "Content-Length" not in response.headers
    body = b"".join(response.iter_content(256 * 1024))
    assert len(body) == 3 * 1024 * 1024 and body.startswith(b"\xff\xd8")


def test_oversized_download_stops_when_the_client_gives_up(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "oversized"  # 256 MiB by default
    response = requests.get(urls[0], timeout=10, stream=True)
    assert int(response.headers["Content-Length"]) >= 256 * 1024 * 1024
    next(response.iter_content(1024 * 1024))
    response.close()
    sandbox.stop()  # joins the handler thread: it noticed the client leaving


def test_decompression_bomb_is_small_on_the_wire_and_huge_decoded(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "bomb"
    response = requests.get(urls[0], timeout=30)
    assert response.headers["Content-Type"] == "image/png"
    assert len(response.content) < 1024 * 1024
    png = response.content
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width * height > 2 * Image.MAX_IMAGE_PIXELS  # past Pillow's hard limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(png))


def test_redirect_to_a_file_url(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "redirect_scheme"
    response = requests.get(urls[0], timeout=10, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "file:///etc/passwd"


@pytest.mark.parametrize(
    ("fault", "code"),
    [("expired", 410), ("forbidden", 403), ("missing", 404), ("unavailable", 503)],
)
def test_download_status_faults(sandbox, fault, code):
    urls = completed_urls(sandbox)
    sandbox.faults.download = fault
    assert requests.get(urls[0], timeout=10).status_code == code
    sandbox.faults.download = None
    assert requests.get(urls[0], timeout=10).status_code == 200


def test_every_download_fault_has_its_answer():
    file_host = submodule("sandbox.file_host")
    answered = [
        *file_host._BEFORE_LOOKUP,
        *file_host._INSTEAD_OF_THE_FILE,
        *file_host._WITH_THE_FILE,
    ]
    assert sorted(answered) == sorted(sandbox_module.DOWNLOAD_FAULTS)


def test_download_faults_still_record_the_request(sandbox):
    urls = completed_urls(sandbox)
    sandbox.faults.download = "forbidden"
    requests.get(urls[0], headers=auth(), timeout=10)
    assert sandbox.file_requests[-1].had_authorization


def test_raw_truncation_closes_the_connection(sandbox):
    """Seen from a socket: the promised length never arrives, then the peer closes."""
    urls = completed_urls(sandbox)
    sandbox.faults.download = "truncate"
    path = urls[0][len(sandbox.file_base_url) :]
    port = int(sandbox.file_base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    assert len(body) == length // 2
