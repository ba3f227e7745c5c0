"""Result downloads against the sandbox's file host and each of its download faults."""

from __future__ import annotations

import pytest
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
download_mod = submodule("api.download")
messages = submodule("api.messages")

FAST_POLL = api.PollSchedule().scaled(0.05)
WAIT_S = 30.0


def make_client(sb, **settings):
    return api.GrokClient(
        api.Settings(api_key=TEST_KEY, base_url=sb.base_url, **settings), poll=FAST_POLL
    )


def finished_urls(client) -> tuple[str, ...]:
    task_id = client.create_text_to_image("a quiet harbour at dawn")
    return client.wait(task_id, timeout=WAIT_S).result_urls


@pytest.fixture
def client(sandbox):
    with make_client(sandbox) as c:
        yield c


def test_download_returns_verified_bytes(sandbox, client):
    url = finished_urls(client)[0]
    blob = client.download(url)
    assert blob.url == url and blob.image_format == "JPEG"
    assert blob.content_type == "image/jpeg" and blob.size == len(blob.data) > 1000
    assert "data" not in repr(blob) or len(repr(blob)) < 400


def test_png_results(sandbox_factory):
    sb = sandbox_factory(image_format="PNG")
    with make_client(sb) as client:
        assert client.download(finished_urls(client)[0]).image_format == "PNG"


@pytest.mark.parametrize("fault", ["expired", "forbidden", "missing"])
def test_gone_urls_are_result_expired(sandbox, client, fault):
    url = finished_urls(client)[0]
    sandbox.faults.download = fault
    with pytest.raises(errors.ResultExpiredError) as caught:
        client.download(url)
    assert "expire" in str(caught.value)
    assert len(sandbox.file_requests) == 1  # not retried


def test_expiry_after_completion(sandbox_factory):
    sb = sandbox_factory(file_expiry=0.0)
    with make_client(sb) as client, pytest.raises(errors.ResultExpiredError):
        client.download(finished_urls(client)[0])


def test_lying_content_type_is_caught_by_magic_bytes(sandbox, client):
    url = finished_urls(client)[0]
    sandbox.faults.download = "not_image"
    with pytest.raises(errors.NotAnImageError) as caught:
        client.download(url)
    assert "not an image" in str(caught.value) and "HTML" in str(caught.value)


def test_announced_oversize_is_refused_before_reading(sandbox_factory):
    sb = sandbox_factory()
    with make_client(sb, max_download_bytes=1024 * 1024) as client:
        url = finished_urls(client)[0]
        sb.faults.download = "oversized"
        with pytest.raises(errors.TooLargeError) as caught:
            client.download(url)
    assert "1 MiB" in str(caught.value)


def test_unannounced_oversize_is_cut_off_while_streaming(sandbox_factory):
    sb = sandbox_factory()
    sb.faults.oversized_bytes = 16 * 1024 * 1024
    with make_client(sb, max_download_bytes=1024 * 1024) as client:
        url = finished_urls(client)[0]
        sb.faults.download = "oversized_unannounced"
        with pytest.raises(errors.TooLargeError):
            client.download(url)


def test_slow_drip_is_bounded_by_the_overall_deadline(sandbox_factory):
    sb = sandbox_factory()
    sb.faults.drip_chunk = 512
    sb.faults.drip_delay = 0.05
    with make_client(sb, download_timeout=0.5) as client:
        url = finished_urls(client)[0]
        sb.faults.download = "slow"
        with pytest.raises(errors.DownloadError) as caught:
            client.download(url)
    assert "longer than 0.5 s" in str(caught.value)


def test_slow_but_steady_download_completes(sandbox_factory):
    sb = sandbox_factory()
    sb.faults.drip_chunk = 64 * 1024
    sb.faults.drip_delay = 0.01
    with make_client(sb) as client:
        url = finished_urls(client)[0]
        sb.faults.download = "slow"
        assert client.download(url).image_format == "JPEG"


def test_truncated_body_is_retried_then_reported(sandbox, client):
    url = finished_urls(client)[0]
    sandbox.faults.download = "truncate"
    with pytest.raises(errors.DownloadError) as caught:
        client.download(url)
    assert not isinstance(caught.value, (errors.NotAnImageError, errors.TooLargeError))
    assert "3 time(s)" in str(caught.value)
    assert len(sandbox.file_requests) == 3


def test_redirect_to_a_file_url_is_not_followed(sandbox, client):
    url = finished_urls(client)[0]
    sandbox.faults.download = "redirect_scheme"
    with pytest.raises(errors.DownloadError) as caught:
        client.download(url)
    assert "file:" in str(caught.value) and "http(s)" in str(caught.value)


def test_decompression_bomb_bytes_still_download(sandbox, client):
    """A tiny valid PNG header: the download is fine; decoding limits live in image_tensors."""
    url = finished_urls(client)[0]
    sandbox.faults.download = "bomb"
    assert client.download(url).image_format == "PNG"


def test_non_http_urls_are_refused_without_a_request(sandbox, client):
    for url in ("file:///etc/passwd", "ftp://example.com/a.jpg", "javascript:alert(1)"):
        with pytest.raises(errors.DownloadError):
            client.download(url)
    with pytest.raises(errors.DownloadError):
        client.download("   ")
    assert sandbox.file_requests == []


def test_key_goes_only_to_the_api_origin(sandbox_factory):
    """Files on the API's own origin may get the key; the separate file host never does."""
    same = sandbox_factory(separate_file_host=False)
    with make_client(same) as client:
        client.download(finished_urls(client)[0])
    assert [r.had_authorization for r in same.file_requests] == [True]

    other = sandbox_factory()
    with make_client(other) as client:
        for url in finished_urls(client):
            client.download(url)
    assert other.file_requests and not any(r.had_authorization for r in other.file_requests)


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00", "video"),
        (b"\x00\x00\x00\x20ftypavif\x00\x00", "AVIF"),
        (b"\x1aE\xdf\xa3\x00\x00", "video"),
        (b"<!DOCTYPE html><html>", "HTML"),
        (b'{"error": "x"}', "JSON"),
        (b"", "empty"),
        (b"\x00\x01\x02\x03", "not a JPEG"),
    ],
)
def test_non_images_are_named(head, words):
    assert download_mod.sniff_image_format(head) is None
    assert words in messages.english(messages.said(download_mod.non_image(head)))


def test_sniffing_images():
    assert download_mod.sniff_image_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert download_mod.sniff_image_format(b"\x89PNG\r\n\x1a\nrest") == "PNG"
    assert download_mod.sniff_image_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert download_mod.sniff_image_format(b"GIF89a...") == "GIF"


# -- a key echoed back is masked wherever it could come out ----------------------------------------


def test_safe_url_drops_userinfo_and_masks_remembered_keys():
    from support.keys import TEST_KEY

    redaction = submodule("api.redaction")
    errors_mod = submodule("api.errors")
    errors_mod.remember_secret(TEST_KEY)
    url = f"https://user:pass@cdn.example/files/a.jpg?token={TEST_KEY}&x=1"
    safe = redaction.safe_url(url)
    assert safe == "https://cdn.example/files/a.jpg?token=<redacted key>&x=1"
    assert redaction.safe_url("https://cdn.example/a.jpg") == "https://cdn.example/a.jpg"


def test_urllib3_request_lines_are_masked_before_any_handler(caplog):
    import logging

    from support.keys import TEST_KEY

    redaction = submodule("api.redaction")
    submodule("api.errors").remember_secret(TEST_KEY)
    redaction.install()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s', "http", "cdn", 80, "GET", f"/a.jpg?token={TEST_KEY}",
        "HTTP/1.1", 200, 10,
    )  # fmt: skip
    (record,) = [r for r in caplog.records if r.name == "urllib3.connectionpool"]
    assert TEST_KEY not in record.getMessage() and "<redacted key>" in record.getMessage()
