"""The fault matrix, download side: result files that expire, break, lie, drip, swell or explode.

A result file is fetched after the task is paid for, so every row also proves the money side:
one create, and queueing the same request again never creates a second task. What is kept on disk
is checked file by file: the paid bytes when they are good, nothing when they are not.
"""

from __future__ import annotations

import asyncio
import resource
import tracemalloc

import pytest
from support import pack, submodule
from support.reliability import (
    KEY,
    PROMPT,
    RESPOND,
    REWRITE,
    FaultProxy,
    bounded,
    make_rig,
    matrix_row,
    no_key_leaks,  # noqa: F401 - autouse: DEBUG logs on, no key in any record or file
    point_nodes_at,
    pointer_row,
    raised,
)

errors = submodule("api.errors")
execution = submodule("nodes.execution")
images = submodule("sandbox.images")

AREA = "Downloads"
EXPIRY_FAULTS = {"expired": 410, "forbidden": 403, "missing": 404}


# -- expired result URLs ---------------------------------------------------------------------------


@matrix_row(
    AREA, "result URL expired (HTTP 410 / 403 / 404), the journal's copy on disk",
    "nothing: the kept images come back, with no API call at all",
    "the kept files, untouched; 1 create, 5 credits",
)  # fmt: skip
@pytest.mark.parametrize("fault", EXPIRY_FAULTS, ids=[f"{s}" for s in EXPIRY_FAULTS.values()])
def test_expired_url_with_the_kept_copy_is_served_from_disk(sandbox, tmp_path, fault):
    rig = make_rig(tmp_path, sandbox)
    first = rig.runner.text_to_image(PROMPT)
    kept = {path: path.read_bytes() for path in first.files}
    sandbox.faults.download = fault
    file_requests = len(sandbox.file_requests)

    again = rig.runner.text_to_image(PROMPT)
    assert again.reused and again.files == first.files
    assert {path: path.read_bytes() for path in again.files} == kept
    assert len(sandbox.file_requests) == file_requests and rig.factory.calls == 1
    assert rig.ledger() == (1, 5)


@matrix_row(
    AREA, "result URL expired (HTTP 410 / 403 / 404), no copy on disk",
    "`ResultExpiredError`: \"The result file is no longer available: the URLs of task <id> have "
    "expired (file 1 of 6: ... HTTP 410 ...) and the kept copy is not in <folder>, so the images "
    "cannot be fetched again. Change the seed to create a new task (5 credits).\"",
    "journal row `succeeded` with the URLs, no files; nothing re-created (1 create, 5 credits)",
)  # fmt: skip
@pytest.mark.parametrize("fault", EXPIRY_FAULTS, ids=[f"{s}" for s in EXPIRY_FAULTS.values()])
def test_expired_url_without_a_copy_says_what_to_do(sandbox, tmp_path, fault):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.download = fault
    caught = rig.expect(errors.ResultExpiredError, lambda: rig.runner.text_to_image(PROMPT))
    (entry,) = rig.history()
    message = str(caught)
    assert entry.task_id in message and f"HTTP {EXPIRY_FAULTS[fault]}" in message
    assert "expired" in message and "change the seed" in message.lower()
    assert str(rig.files_root / entry.task_id) in message
    assert entry.state == "succeeded" and len(entry.result_urls) == 6 and not entry.files
    assert rig.kept() == []
    rig.expect(errors.ResultExpiredError, lambda: rig.runner.text_to_image(PROMPT))
    assert rig.ledger() == (1, 5)


# -- broken and lying files ------------------------------------------------------------------------


@matrix_row(
    AREA, "truncated image (Content-Length promises more than arrives)",
    "`DownloadError`: \"Downloading <url> failed 3 time(s), last: the connection closed before "
    "the whole file arrived. This is usually passing ...: queue the node again; the task is paid "
    "and its result is fetched without creating a new one.\"",
    "no partial file; journal row `succeeded` with the URLs; queueing again fetches the files "
    "(1 create, 5 credits)",
)  # fmt: skip
def test_truncated_image_is_retried_then_fetched_later_without_paying(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.download = "truncate"
    caught = rig.expect(errors.DownloadError, lambda: rig.runner.text_to_image(PROMPT))
    assert "failed 3 time(s)" in str(caught) and "closed before the whole file" in str(caught)
    assert "without creating a new one" in str(caught)
    assert rig.kept() == [] and not any(rig.files_root.rglob("*.tmp"))
    assert [e.state for e in rig.history()] == ["succeeded"]

    (entry,) = rig.history()
    sandbox.faults.download = None
    result = rig.runner.text_to_image(PROMPT)
    assert result.task_id == entry.task_id and len(result.files) == 6 and not result.reused
    assert rig.ledger() == (1, 5)


@matrix_row(
    AREA, "non-image bytes (an HTML page served as `image/jpeg`)",
    "`NotAnImageError`: \"The result file <url> is an HTML or XML page, not an image (JPEG, PNG, "
    "WEBP or GIF) ... the task is paid, so report it rather than retrying.\"",
    "nothing kept (the bytes are not an image); journal row `succeeded`; 1 create, 5 credits",
)  # fmt: skip
def test_non_image_bytes_are_refused_and_not_kept(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.download = "not_image"
    caught = rig.expect(errors.NotAnImageError, lambda: rig.runner.text_to_image(PROMPT))
    assert "HTML" in str(caught) and "not an image" in str(caught)
    assert rig.kept() == [] and rig.ledger() == (1, 5)
    rig.expect(errors.NotAnImageError, lambda: rig.runner.text_to_image(PROMPT))
    assert rig.ledger() == (1, 5)


@matrix_row(
    AREA, "slow-drip file host (4 KB every 0.2 s)",
    "`DownloadError` once the download deadline passes: \"Downloading <url> took longer than "
    "0.5 s (only N bytes arrived): the file host or the network is very slow. Queue the node "
    "again later.\"",
    "no partial file; journal row `succeeded`; 1 create, 5 credits",
)  # fmt: skip
def test_slow_drip_download_is_bounded_by_the_deadline(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox, download_timeout=0.5)
    sandbox.faults.download = "slow"
    sandbox.faults.drip_chunk = 4096
    sandbox.faults.drip_delay = 0.2
    caught = rig.expect(errors.DownloadError, lambda: rig.runner.text_to_image(PROMPT))
    assert "took longer than 0.5 s" in str(caught) and "bytes arrived" in str(caught)
    assert rig.kept() == [] and rig.ledger() == (1, 5)


@matrix_row(
    AREA, "oversized body (64 MiB against a 1 MiB cap), with and without Content-Length",
    "`TooLargeError`: \"The result file <url> is larger than the 1 MiB download limit ...; it "
    "was not kept.\" Memory stays bounded by the cap while streaming",
    "nothing kept; 1 create, 5 credits",
)  # fmt: skip
@pytest.mark.parametrize("fault", ["oversized", "oversized_unannounced"])
def test_oversized_body_is_capped_with_bounded_memory(sandbox, tmp_path, fault):
    rig = make_rig(tmp_path, sandbox, max_download_bytes=1024 * 1024)
    sandbox.faults.download = fault
    sandbox.faults.oversized_bytes = 64 * 1024 * 1024
    tracemalloc.start()
    try:
        caught = rig.expect(errors.TooLargeError, lambda: rig.runner.text_to_image(PROMPT))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "1 MiB download limit" in str(caught) and "not kept" in str(caught)
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes: the body was not streamed with a cap"
    assert rig.kept() == [] and rig.ledger() == (1, 5)


@matrix_row(
    AREA, "decompression bomb (a 100 KB PNG of 24000 x 24000 pixels), through the node",
    "the node fails with one line: \"Result file 1 of task <id> was not kept: it is too large to "
    "decode safely (...)\"; no pixel is decoded, memory does not grow; queueing again gives the "
    "same line without a new create",
    "nothing kept as good (a kept file is a decodable file); 1 create, 5 credits",
)  # fmt: skip
def test_decompression_bomb_is_refused_by_the_pixel_cap(sandbox_factory, tmp_path, monkeypatch):
    sb = sandbox_factory(images_per_task=2)
    sb.faults.download = "bomb"
    point_nodes_at(monkeypatch, tmp_path / "home", sb.base_url)
    node = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]()
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        for _ in range(2):
            caught = bounded(lambda: raised(lambda: asyncio.run(node.generate(PROMPT, 0))))
            assert isinstance(caught, RuntimeError), repr(caught)
            message = str(caught)
            assert "too large to decode safely" in message and "was not kept" in message
            assert "\n" not in message and KEY not in message
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    finally:
        execution.close_journals()
    assert grown_mib < 256, f"peak memory grew {grown_mib:.0f} MiB decoding a bomb"
    (task_id,) = sb.task_ids()
    folder = tmp_path / "home" / "files" / task_id
    assert not [p for p in folder.iterdir() if p.name[0].isdigit()] if folder.exists() else True
    assert (sb.ledger(KEY).creates, sb.ledger(KEY).credits_charged) == (1, 5)


BAD_IMAGE_FAULTS = {
    "huge_header": (errors.TooLargeError, "9000x9000"),
    "truncated_image": (errors.NotAnImageError, "cut short"),
    "short_length": (errors.NotAnImageError, "cut short"),
    "garbage_png": (errors.NotAnImageError, "not one Pillow can read"),
    "garbage_gif": (errors.NotAnImageError, "not one Pillow can read"),
    "garbage_webp": (errors.NotAnImageError, "not one Pillow can read"),
    "garbage_jpeg": (errors.NotAnImageError, "not an image this pack can read"),
}


@matrix_row(
    AREA, "a result file that passes the magic-byte sniff but does not decode: a header declaring "
    "9000 x 9000, a JPEG cut short (served whole), a Content-Length shorter than the body, PNG / "
    "GIF / WebP / JPEG magic followed by garbage",
    "`TooLargeError` / `NotAnImageError`: \"Result file 1 of task <id> was not kept: it is "
    "9000x9000 (81 megapixels), over the 67 megapixel limit ...\" / \"... it cannot be decoded, "
    "the image data is damaged or cut short ...\"",
    "nothing kept as good (each file is decoded before it is kept); 1 create, 5 credits",
)  # fmt: skip
@pytest.mark.parametrize("fault", BAD_IMAGE_FAULTS)
def test_undecodable_result_files_are_never_kept_as_good(sandbox_factory, tmp_path, fault):
    sb = sandbox_factory(images_per_task=2)
    rig = make_rig(tmp_path, sb)
    sb.faults.download = fault
    kind, words = BAD_IMAGE_FAULTS[fault]
    caught = rig.expect(kind, lambda: rig.runner.text_to_image(PROMPT))
    assert "was not kept" in str(caught) and words in str(caught), str(caught)
    assert rig.kept() == [] and rig.ledger() == (1, 5)
    (entry,) = rig.history()
    assert entry.state == "succeeded" and not entry.files


@matrix_row(
    AREA, "one result file of six does not decode (9000 x 9000 header / garbage after the magic "
    "bytes / a JPEG cut short), through the node",
    "the node returns the other five images; the status line says \"1 of 6 result files could "
    "not be kept (Result file 3 of task <id> was not kept: ...)\"",
    "the five good files; the bad one is not kept; 1 create, 5 credits; queueing again sends no "
    "create",
)  # fmt: skip
@pytest.mark.parametrize("fault", ["huge_header", "garbage_png", "truncated_image"])
def test_one_undecodable_file_never_withholds_the_rest(sandbox, tmp_path, monkeypatch, fault):
    sandbox.faults.download = fault
    sandbox.faults.download_only_index = 2
    point_nodes_at(monkeypatch, tmp_path / "home", sandbox.base_url)
    node = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]()
    try:
        for _ in range(2):
            images, task_ids, _urls = bounded(lambda: asyncio.run(node.generate(PROMPT, 0)))
            assert tuple(images.shape[:1]) == (5,)
    finally:
        execution.close_journals()
    (task_id,) = sandbox.task_ids()
    kept = sorted(p.name for p in (tmp_path / "home" / "files" / task_id).iterdir()
                  if p.name[0].isdigit())  # fmt: skip
    assert kept == ["0.jpg", "1.jpg", "3.jpg", "4.jpg", "5.jpg"]
    assert task_ids.strip() == task_id
    assert (sandbox.ledger(KEY).creates, sandbox.ledger(KEY).credits_charged) == (1, 5)


@matrix_row(
    AREA, "a result file whose body is empty (HTTP 200, 0 bytes), every time",
    "`NotAnImageError` after the retries: \"The result file <url> was empty each of the 3 "
    "time(s) it was fetched: the file host has nothing for this URL. The task is paid; report "
    "it ...\" (a permanent failure of that file, not \"usually passing\")",
    "nothing kept; journal row `succeeded`; 1 create, 5 credits",
)  # fmt: skip
def test_empty_body_is_a_permanent_failure_after_the_retries(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.download = "empty"
    caught = rig.expect(errors.NotAnImageError, lambda: rig.runner.text_to_image(PROMPT))
    assert "was empty each of the 3 time(s)" in str(caught)
    assert "usually passing" not in str(caught)
    assert rig.kept() == [] and rig.ledger() == (1, 5)


@matrix_row(
    AREA, "a file host that accepts the connection and never answers",
    "`DownloadError`: \"Downloading <url> failed 3 time(s), last: the file host did not answer "
    "within 0.3 s ...\" (a timeout, named as one: not \"could not be reached\")",
    "nothing kept; journal row `succeeded`; queueing again once it answers fetches the files; "
    "1 create, 5 credits",
)  # fmt: skip
def test_a_silent_file_host_is_named_as_a_timeout(sandbox_factory, tmp_path):
    sb = sandbox_factory(images_per_task=1)
    rig = make_rig(tmp_path, sb, read_timeout=0.3)
    message = _three_requests_then_fetched_when_back(sb, rig, "silent")
    assert "did not answer within 0.3 s" in message, message
    assert "could not be reached" not in message


def _three_requests_then_fetched_when_back(sb, rig, fault: str) -> str:
    """A one-file task whose file host fails with ``fault``: the run fails after exactly 3
    requests and keeps nothing; once the host is back the same request fetches the file with
    a fourth (no new create). Returns the message of the failure."""
    sb.faults.download = fault
    caught = rig.expect(errors.DownloadError, lambda: rig.runner.text_to_image(PROMPT))
    message = str(caught)
    assert "failed 3 time(s)" in message and len(sb.file_requests) == 3, message
    assert rig.kept() == [] and [e.state for e in rig.history()] == ["succeeded"]
    sb.faults.download = None
    result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 1 and len(sb.file_requests) == 4
    assert rig.ledger() == (1, 5)
    return message


@matrix_row(
    AREA, "a file host that is down (HTTP 503 on every request)",
    "`DownloadError`: \"Downloading <url> failed 3 time(s), last: the file host answered HTTP "
    "503. This is usually passing ...\" after exactly 3 requests for the file (the session "
    "retries nothing itself, so the count in the message is the count of requests)",
    "nothing kept; journal row `succeeded` with the URLs; queueing again once the host is back "
    "fetches the files; 1 create, 5 credits",
)  # fmt: skip
def test_a_file_host_that_is_down_is_asked_three_times_per_file(sandbox_factory, tmp_path):
    sb = sandbox_factory(images_per_task=1)
    rig = make_rig(tmp_path, sb)
    message = _three_requests_then_fetched_when_back(sb, rig, "unavailable")
    assert "failed 3 time(s), last: the file host answered HTTP 503" in message, message
    assert "without creating a new one" in message


@matrix_row(
    AREA, "redirect of a result URL to a non-http(s) scheme (`file:///etc/passwd`)",
    "`DownloadError`: \"The result file <url> redirects to a file: address; only http(s) is "
    "followed. Report it.\"",
    "nothing kept, nothing read from the local disk; 1 create, 5 credits",
)  # fmt: skip
def test_redirect_to_a_non_http_scheme_is_refused(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.download = "redirect_scheme"
    caught = rig.expect(errors.DownloadError, lambda: rig.runner.text_to_image(PROMPT))
    assert "file:" in str(caught) and "only http(s)" in str(caught)
    assert rig.kept() == [] and rig.ledger() == (1, 5)


# -- the key stays with the API --------------------------------------------------------------------


@matrix_row(
    AREA, "the API key and the file host (a CDN on another origin)",
    "nothing: files are fetched without `Authorization`",
    "the task's images; every file request to the file host carried no key",
)  # fmt: skip
def test_key_is_never_sent_to_the_file_host(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 6
    assert len(sandbox.file_requests) == 6
    assert not any(r.had_authorization for r in sandbox.file_requests)


@matrix_row(
    AREA, "a result URL on the API's own origin that redirects to the file host",
    "nothing: the key goes to the API origin only and is dropped on the cross-origin redirect",
    "the task's images; the file host saw no key",
)  # fmt: skip
def test_key_is_dropped_when_an_api_origin_url_redirects_to_the_file_host(sandbox, tmp_path):
    with FaultProxy(sandbox.base_url) as proxy:
        rig = make_rig(tmp_path, sandbox, base_url=proxy.base_url)
        file_host = sandbox.file_base_url

        def urls_on_the_api_origin(payload):
            output = (payload.get("data") or {}).get("output") or {}
            output["image_urls"] = [
                url.replace(file_host, proxy.base_url) for url in output.get("image_urls", [])
            ]
            return payload

        def redirect_to_the_file_host(method, path):
            return 302, [("Location", file_host + path)], b""

        proxy.add("GET", "/api/v1/tasks/", REWRITE, times=None, transform=urls_on_the_api_origin)
        proxy.add("GET", "/files/", RESPOND, times=None, transform=redirect_to_the_file_host)
        result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 6 and all(proxy.base_url in url for url in result.urls)
    via_api = [s for s in proxy.seen if s.path.startswith("/files/")]
    assert len(via_api) == 6 and all(s.had_authorization for s in via_api)  # API origin: allowed
    assert len(sandbox.file_requests) == 6
    assert not any(r.had_authorization for r in sandbox.file_requests)


pointer_row(
    AREA,
    "one result file of a task can no longer be had (expired) while the others are kept",
    'the other images are returned; the status line says "1 of 6 result files could not be '
    'kept (...)"',
    "the 5 kept files; no create",
    "test_journal_runner.py::test_one_lost_file_never_withholds_the_paid_others",
)
