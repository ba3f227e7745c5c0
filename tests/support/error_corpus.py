"""Many of the pack's errors, made the way its raise sites make them, with varied facts.

The corpus is what ``tests/test_error_words.py`` checks the node's words against (its English
equals the error's own line, for every one), and what a change to how errors are worded can be
compared with before and after: ``python tests/support/error_corpus.py PACK_DIR`` prints each
error's texts as JSON lines, whichever copy of the pack ``PACK_DIR`` is.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

Made = tuple[str, BaseException]

PROVIDER_WORDS = ("", "quota exceeded.", "  spaced \n out  ", "Please login first to use this node")
STATUSES = (
    *(400, 401, 402, 403, 404, 405, 408, 409, 410, 413, 415, 422, 429, 433, 451, 455),
    *(499, 500, 501, 502, 503, 504, 505, 520, 599, 302, 200, 0),
)


def _made(name: str, make: Callable[[], Any]) -> Iterator[Made]:
    """``make()``'s error (returned or raised), or nothing when it made none."""
    try:
        made = make()
    except Exception as exc:  # the raise sites raise: that is the point
        yield name, exc
        return
    if isinstance(made, BaseException):
        yield name, made


def corpus(sub: Callable[[str], ModuleType]) -> list[Made]:
    """Every error below, made with the pack whose submodules ``sub`` returns."""
    return [
        *_api_refusals(sub),
        *_network(sub),
        *_config(sub),
        *_validation(sub),
        *_downloads(sub),
        *_task_reading(sub),
        *_defaults(sub),
        *_journal(sub),
        *_images(sub),
    ]


KEY = "sk-corpus-key-0123456789"
KEY_FILE = Path(tempfile.gettempdir()) / "grok-imagine-error-corpus" / "api_key"


def _settings(
    sub: Callable[[str], ModuleType], source: str = "code", key: str = KEY, **kwargs: Any
) -> Any:
    """Settings as the pack makes them: a key given in code, from the environment or a file."""
    config = sub("api.config")
    base_url = kwargs.pop("base_url", "https://apiin.one")
    if source == "code":
        settings = config.Settings(api_key=key, base_url=base_url)
    elif source == "env":
        settings = config.load_settings(
            None, {"APIINONE_API_KEY": key, "APIINONE_BASE_URL": base_url}
        )
    else:
        KEY_FILE.parent.mkdir(exist_ok=True)
        KEY_FILE.write_text(key + "\n", encoding="utf-8")
        settings = config.load_settings(KEY_FILE, {"APIINONE_BASE_URL": base_url})
    return dataclasses.replace(settings, **kwargs) if kwargs else settings


def _api_refusals(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    http = sub("api.http_errors")
    calls = (
        http.Call("create", model="grok-imagine"),
        http.Call("create", task_id="src_9_grok", model="grok-upscale"),
        http.Call("status", task_id="tsk_1_grok"),
    )
    settings = (
        _settings(sub, "env"),
        _settings(sub, "file", base_url="http://127.0.0.1:8188/x"),
        _settings(sub),
    )
    said = (
        *PROVIDER_WORDS,
        "record not found",
        "endpoint not found",
        "bad aspect ratio",
        "the prompt is too long",
        "sk-corpus-key-0123456789 is wrong",
    )
    for status in STATUSES:
        for call in calls:
            for words in said:
                for s in settings:
                    for retry in (None, 2.2):
                        name = f"map_api_error {status} {call.kind} {call.task_id} {words!r}"
                        yield from _made(
                            name,
                            lambda status=status, words=words, call=call, s=s, retry=retry: (
                                http.map_api_error(status, words, call, s, retry_after=retry)
                            ),
                        )
    for retry in (None, 0.2, 12.0):
        for creating in (True, False):
            for words in ("", "slow down"):
                yield (
                    f"rate_limited {retry} {creating} {words}",
                    http.rate_limited(retry, creating=creating, said=words),
                )


def _network_failures() -> list[BaseException]:
    import requests
    from urllib3 import exceptions as u3

    plain = ssl.SSLError(1, "wrong version")
    plain.reason = "WRONG_VERSION_NUMBER"  # type: ignore[attr-defined]
    return [
        requests.exceptions.ProxyError("proxy"),
        requests.exceptions.ConnectionError(socket.gaierror(-2, "Name or service not known")),
        requests.exceptions.SSLError("bad cert"),
        requests.exceptions.SSLError(plain),
        requests.exceptions.ConnectionError(ConnectionRefusedError(111, "refused")),
        requests.exceptions.ConnectionError(u3.NewConnectionError(None, "failed")),
        requests.exceptions.ConnectTimeout("connect timeout"),
        requests.exceptions.ReadTimeout("read timeout"),
        requests.exceptions.ChunkedEncodingError("cut"),
        requests.exceptions.ConnectionError(ConnectionResetError(104, "reset")),
        requests.exceptions.InvalidURL("bad url"),
        requests.exceptions.MissingSchema("no scheme"),
        requests.exceptions.RequestException("other"),
        u3.ProtocolError("protocol"),
        TimeoutError("timed out"),
    ]


def _network(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    http = sub("api.http_errors")
    download = sub("api.download")
    calls = (http.Call("create"), http.Call("status", task_id="tsk_1_grok"))
    for failure in _network_failures():
        for base in ("https://apiin.one", "http://127.0.0.1:9/api"):
            settings = _settings(sub, base_url=base)
            for call in calls:
                for started in (False, True):
                    name = f"network_error {type(failure).__name__} {call.kind} {base} {started}"
                    yield (
                        name,
                        http.network_error(
                            failure, settings, call, (10.0, 30.5), body_started=started
                        ),
                    )
        transient = download._Transient(download._network_reason(failure, (10.0, 30.5)))
        yield (
            f"download gave up {type(failure).__name__}",
            download._gave_up("https://files.example/a.png", 3, transient),
        )


def _config(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    config = sub("api.config")
    for key in (
        "",
        "   ",
        "a b c d e f g h",
        "abc",
        "x" * 600,
        "sk-\u00e9\u00e9\u00e9\u00e9\u00e9",
        5,
    ):
        yield from _made(f"validate_key {key!r}", lambda key=key: config.validate_key(key))
    for key in ("", "sk-has space-1234", "sk-\u00e9-12345678", "sk-\x01-12345678"):
        for source in ("code", "env", "file"):
            yield from _made(
                f"Settings {key!r} {source}",
                lambda key=key, source=source: _settings(sub, source, key),
            )
    for name in ("connect_timeout", "read_timeout", "download_timeout"):
        yield from _made(
            f"Settings {name}",
            lambda name=name: _settings(sub, **{name: 0}),  # type: ignore
        )
    yield from _made("Settings max bytes", lambda: _settings(sub, max_download_bytes=0))
    for url in ("ftp://x", "", "https://user:pw@apiin.one", "https://apiin.one/?q=1", "apiin.one"):
        yield from _made(f"base url {url!r}", lambda url=url: config.normalize_base_url(url))
    yield from _made("missing key", lambda: config.load_settings("/nonexistent/key", {}))
    yield from _made("missing key env", lambda: config.load_settings(None, {"HOME": "/nonexist"}))
    for path in ("/", "/proc/self/mem"):
        yield from _made(f"key file {path}", lambda path=path: config.read_stored_key(path))


def _validation(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    validation = sub("api.validation")
    prompts = (None, 5, "", "   ", "x" * 5000, "a\x00b", "ok\x1bthere")
    for prompt in prompts:
        yield from _made(f"prompt {prompt!r}"[:80], lambda p=prompt: validation.validate_prompt(p))
    ids = (None, 7, "", "x" * 300, "a b", "a\x01b", "t\u00e9sk", "a/b", "..", ".x", "a\u200bb")
    for task_id in ids:
        yield from _made(f"task id {task_id!r}", lambda t=task_id: validation.validate_task_id(t))
    many = ",".join(f"t{i}" for i in range(40))
    for text in ("", many, "ok, a/b"):
        yield from _made(f"task ids {text[:20]!r}", lambda t=text: validation.validate_task_ids(t))
    for ratio in ("7:3", None, 3, ""):
        yield from _made(f"ratio {ratio!r}", lambda r=ratio: validation.validate_aspect_ratio(r))


def _response(status: int, headers: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(status_code=status, headers=headers or {})


def _downloads(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    download = sub("api.download")
    shown = "https://files.example/r/a.png"
    for status in (403, 404, 410, 429, 500, 503, 418, 301):
        yield from _made(
            f"download status {status}",
            lambda status=status: download._check_status(_response(status), shown),
        )
    samples = (
        b"",
        b"\x00\x00\x00\x18ftypavif",
        b"\x00\x00\x00\x18ftypisom",
        b"\x1aE\xdf\xa3....",
        b"RIFF....AVI ",
        b"<!doctype html>",
        b'{"a": 1}',
        b"%PDF-1.4",
        b"hello",
    )
    for data in samples:
        yield from _made(
            f"not an image {data[:8]!r}", lambda d=data: download._require_image(d, shown)
        )
    for size in (None, 80 * 1024 * 1024):
        for cap in (64 * 1024 * 1024, 1_500_000):
            yield f"too large {size} {cap}", download._too_large(shown, size, cap)
    for tries, empty in ((1, True), (3, True), (2, False)):
        last = download._Transient("the file host answered HTTP 503", empty=empty)
        yield f"gave up {tries} {empty}", download._gave_up(shown, tries, last)
    session = SimpleNamespace()
    yield from _made("download bad scheme", lambda: download.download("ftp://x/y", session))


def _task_reading(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    reader = sub("api.task_reader")
    polling = sub("api.polling")
    task = sub("api.task")
    payloads = (
        [],
        "text",
        5,
        {"nothing": 1},
        {"status": "running"},
        {"data": {"status": None}},
        json.loads("[" * 50 + "]" * 50),
    )
    for payload in payloads:
        for task_id in (None, "tsk_1_grok"):
            yield from _made(
                f"parse_task {payload!r} {task_id}"[:90],
                lambda p=payload, t=task_id: reader.parse_task(p, t),
            )
    for error in (None, "", "nsfw content", "The model is busy.", "  odd \n reason "):
        for task_id in (None, "tsk_2_grok"):
            state = task.TaskState.FAILED
            failed = task.Task(id=task_id, state=state, error=error)
            yield f"failure_error {error!r} {task_id}", polling.failure_error(failed)


def _defaults(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    errors = sub("api.errors")
    advice = errors.Advice
    for name in errors.__all__:
        kind = getattr(errors, name)
        if not (isinstance(kind, type) and issubclass(kind, errors.GrokError)):
            continue
        if kind in (errors.TaskFailedError, errors.ModerationError):
            for task_id in (None, "tsk_1_grok"):
                for reason in (None, "x.", "quota exceeded"):
                    yield f"{name} {task_id} {reason}", kind(task_id, reason)
            yield f"{name} own text", kind("tsk_1_grok", "r", "A text of its own.")
        elif kind is errors.TaskTimeoutError:
            for task_id in (None, "tsk_3_grok"):
                for timeout in (None, 600.0, 90.5, 1e-3):
                    for last in (None, "HTTP 503.", "slow"):
                        yield (
                            f"{name} {task_id} {timeout} {last}",
                            kind(task_id, timeout, last_error=last),
                        )
        elif kind is errors.CancelledError:
            for task_id in (None, "tsk_4_grok"):
                yield f"{name} {task_id}", kind(task_id)
        else:
            yield f"{name} default", kind()
    for reason in (None, "no answer within 30 s"):
        yield f"UncertainCreateError {reason}", errors.UncertainCreateError(reason=reason)
    for status in (None, 410):
        yield f"ResultExpiredError {status}", errors.ResultExpiredError(status=status)
    yield "InvalidRequestError field", errors.InvalidRequestError(field="prompt")
    yield "InvalidRequestError server", errors.InvalidRequestError(field="seed", from_server=True)
    yield "ServerError advice", errors.ServerError(advice=advice.NONE)


class _Entry(SimpleNamespace):
    pass


def _entry(**kwargs: Any) -> Any:
    facts = {
        "id": 7,
        "source_task_id": None,
        "prompt": "a cat",
        "seed": 3,
        "index": 0,
        "error": None,
        "created_at": 0.0,
        "credits": 5,
        "state": "uncertain",
    }
    facts.update(kwargs)
    return _Entry(**facts)


def _journal(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    durability = sub("journal.durability")
    spend = sub("journal.spend_limit")
    runner = sub("journal.runner")
    open_ = sub("journal.open")
    store = sub("journal.store")
    problems = ("read-only", "full", "not-a-folder", "newer-journal", "unreadable")
    for role in ("task journal", "kept files"):
        for problem in problems:
            for detail in ("", "Permission denied"):
                yield (
                    f"storage {role} {problem} {detail}",
                    durability.StorageUnavailableError(role, Path("/data/x"), problem, detail),
                )
        for code in (errno.ENOSPC, errno.ENOTDIR, errno.EACCES, errno.EROFS):
            yield (
                f"storage os {role} {code}",
                durability._from_os_error(role, Path("/data/y"), OSError(code, "strerror text")),
            )
    for raw in (True, "abc", -1, 10**9, "12x", 3.5):
        yield from _made(f"parse_limit {raw!r}", lambda raw=raw: spend.parse_limit(raw, "LIMIT"))
    for source in ("settings", "env", None):
        limit = spend.DailyLimit(15, source, Path("/x/settings.json") if source else None)
        yield f"spend limit {source}", spend.SpendLimitError(12, limit, 10)
    yield "spend limit none", spend.SpendLimitError(0, spend.DailyLimit(None), 5)
    for state in (None, "succeeded", "creating"):
        yield f"not uncertain {state}", runner.NotUncertainError(9, state)
    entries = (
        _entry(),
        _entry(prompt="p" * 60, error="no answer within 30 s"),
        _entry(source_task_id="src_9_grok", prompt=None, credits=12),
        _entry(prompt=None, seed=None, index=None),
    )
    for number, entry in enumerate(entries):
        yield f"uncertain row {number}", runner._uncertain_error(entry)
    yield from _made("ledger", lambda: runner._ledger(SimpleNamespace(where="somewhere")))
    for value in ("sqlite:///x", "x", "http://h/db", "", "mysql://u:p@h/d"):
        yield from _made(
            f"journal url {value!r}", lambda v=value: open_.checked_journal_url(v, "THE_URL")
        )
    yield "journal unavailable default", store.JournalUnavailableError()
    yield "settled while waiting", store.SettledWhileWaitingError()
    yield from _journal_more(sub)


def _journal_more(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    pacing = sub("journal.pacing")
    for text in ("fast", "0/10", "20/0", "x/y", "20/-1"):
        yield from _made(f"rate {text!r}", lambda t=text: pacing.parse_rate(t))
    verify = sub("journal.verify")
    for data in (b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\x00" * 20, b"nothing"):
        yield from _made(f"verify {data[:6]!r}", lambda d=data: verify.verify_image(d))
    for size in ((0, 5), (10000, 10000)):
        yield from _made(
            f"pixels {size}", lambda s=size: verify.check_pixel_count(*s, 50_000_000, "image 3")
        )
    result_files = sub("journal.result_files")
    errors = sub("api.errors")
    files = SimpleNamespace(task_dir=lambda task_id: Path("/kept") / task_id)
    for status in (None, 410):
        cause = errors.ResultExpiredError(status=status)
        yield f"expired {status}", result_files._expired_error("tsk_5_grok", 1, 4, files, cause)


BAD_IMAGES = (b"nothing", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\x00" * 20)


def _images(sub: Callable[[str], ModuleType]) -> Iterator[Made]:
    """A result file not kept, and the node's batch of images (nodes/image_tensors.py)."""
    store = sub("journal.files").FileStore(Path(tempfile.gettempdir()) / "grok-corpus-files")
    fetch = sub("journal.result_files")._Download(
        SimpleNamespace(journal=SimpleNamespace(record_file_failure=lambda *a: None), files=store),
        SimpleNamespace(download=lambda url: SimpleNamespace(data=BAD_IMAGES[1])),
        "tsk_6_grok",
        ["https://files.example/a.png"] * 3,
        sub("journal.hooks").RunHooks(),
    )
    yield from _made("fetched, not kept", lambda: fetch.fetch(1))
    yield from _made("saved, not kept", lambda: store.save("tsk_6_grok", 2, BAD_IMAGES[2]))
    tensors, labels = sub("nodes.image_tensors"), sub("nodes.result_images")

    def decoded(source: Any, slots: int = 1, order: tuple[int, ...] = (0,), **kw: Any) -> Any:
        batch = tensors.ImageBatch(slots, **{k: v for k, v in kw.items() if k != "label"})
        batch.add(0, source, label=kw.get("label"))
        return batch.finish(list(order))

    for data in BAD_IMAGES:
        yield from _made(f"tensor {data[:6]!r}", partial(decoded, data))
        two = tensors._label(data, 0, 2)
        yield from _made(f"tensor 1 of 2 {data[:6]!r}", partial(decoded, data, 2, label=two))
    yield from _made("no images", lambda: tensors.ImageBatch(1).finish([]))
    yield from _made("a missing file", partial(decoded, "/nonexistent/a.png"))
    yield from _made("batch too large", partial(decoded, _png(), 3, max_batch_pixels=10))
    of_task = labels._label("tsk_6_grok", 0, 2)
    yield from _made("a batch of none", partial(decoded, BAD_IMAGES[1], 2, (0, 1), label=of_task))
    yield from _made("no image", lambda: labels.ResultImages(1).finish([]))


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30)).save(out, "PNG")
    return out.getvalue()


def lines(sub: Callable[[str], ModuleType]) -> Iterator[dict[str, str]]:
    """Each error's texts: its class, what happened, the node's line, the CLI's (with a rerun)."""
    errors = sub("api.errors")
    cli = errors.Surface.CLI
    for name, exc in corpus(sub):
        texts = {"name": name, "type": type(exc).__name__, "str": str(exc), "repr": repr(exc)}
        if isinstance(exc, errors.GrokError):
            texts["what"] = exc.what
            texts["cli"] = exc.line(cli)
            texts["rerun"] = exc.line(cli, rerun="grok-imagine image 'a cat'")
        yield texts


def main() -> None:
    pack_dir = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from pack_loader import load_pack_at, submodule_of

    pack = load_pack_at(pack_dir, "ComfyUI-Grok-Imagine-corpus")
    for texts in lines(lambda name: submodule_of(pack, name)):
        print(json.dumps(texts, ensure_ascii=False))


if __name__ == "__main__":
    main()
