"""The node's status as message keys: the English messages say exactly what the CLI and the
errors say, every event has its words, and the browser's renderer (``web/js``) words a status as
the tests' renderer (``support.status_text``) does."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support import PACK_DIR, submodule
from support.status_text import render, status_lines

errors = submodule("api.errors")
advice = submodule("api.advice")
task_mod = submodule("api.task")
events = submodule("journal.events")
spend_limit = submodule("journal.spend_limit")
runner_mod = submodule("journal.runner")
error_phrases = submodule("nodes.error_phrases")
event_phrases = submodule("nodes.event_phrases")
phrases = submodule("nodes.phrases")
status_board = submodule("nodes.status_board")

NODE = advice.Surface.NODE
FORMAT_JS = PACK_DIR / "web" / "js" / "grok_imagine_format.js"


def english(part) -> str:
    return render(phrases.part_json(part))


# -- errors and their advice -----------------------------------------------------------------------

FACTS = [
    {},
    {"task_id": "tsk_1_grok"},
    {"field": "prompt"},
    {"source_task_id": "src_9_grok"},
    {"task_id": "tsk_1_grok", "source_task_id": "src_9_grok"},
    {"limit_source": "env"},
    {"limit_source": "settings", "limit_file": "/x/settings.json"},
]


@pytest.mark.parametrize("kind", list(advice.Advice))
@pytest.mark.parametrize("facts", FACTS, ids=lambda f: ",".join(f) or "none")
def test_every_advice_is_worded_as_the_node_surface_words_it(kind, facts) -> None:
    error = errors.GrokError("Something happened.", advice=kind)
    for name, value in facts.items():
        setattr(error, name, value)
    made = error_phrases.advice_phrase(error)
    expected = advice.advice_text(kind, NODE, error_phrases._facts(error))
    assert (english(made) if made is not None else "") == expected
    assert english(error_phrases.error_phrase(error)) == errors.exception_line(error, NODE)


def limit(credits: int, source: str = "settings"):
    return spend_limit.DailyLimit(credits, source, Path("/x/settings.json"))


ERRORS = [
    spend_limit.SpendLimitError(12, limit(15), 10),
    spend_limit.SpendLimitError(0, limit(0, "env"), 5),
    errors.TaskFailedError("tsk_1_grok", "the model is busy."),
    errors.TaskFailedError("tsk_1_grok"),
    errors.TaskFailedError(None, "quota"),
    errors.TaskFailedError(None),
    errors.ModerationError("tsk_2_grok", "nsfw"),
    errors.ModerationError("tsk_2_grok"),
    errors.TaskTimeoutError("tsk_3_grok", 600.0),
    errors.TaskTimeoutError("tsk_3_grok", 90.5, last_error="HTTP 503."),
    errors.TaskTimeoutError(None, 30.0),
    errors.TaskTimeoutError("tsk_3_grok", None),
    errors.MissingKeyError(),
    errors.UncertainCreateError(),
    errors.ResultExpiredError(),
    errors.TaskFailedError("tsk_1_grok", "x", message="A text of its own."),
    runner_mod.UncertainTaskError.__new__(runner_mod.UncertainTaskError),
    RuntimeError("boom <b>"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_line_on_the_node_is_the_errors_own_line(error) -> None:
    if isinstance(error, runner_mod.UncertainTaskError):
        errors.UncertainCreateError.__init__(error)
        error.source_task_id = "src_9_grok"
    assert english(error_phrases.error_phrase(error)) == errors.exception_line(error, NODE)
    what = error_phrases.error_what(error)
    assert english(what) == errors.what_happened(error)


def test_the_limits_refusal_and_task_failures_are_made_from_facts_not_english() -> None:
    refusal = error_phrases.error_phrase(ERRORS[0])
    assert refusal.params["what"] == phrases.phrase("what.spendLimit", spent=12, limit=15, need=10)
    assert refusal.params["advice"].key == "advice.raiseLimit"
    failed = error_phrases.error_what(ERRORS[2])
    assert failed.key == "what.taskFailed" and failed.params["reason"] == "the model is busy"
    # a custom text is not what the facts make: it is shown as it is
    assert error_phrases.error_what(ERRORS[15]) == "A text of its own."


# -- events, states, outcomes ----------------------------------------------------------------------


def sample_events():
    task = task_mod.Task(id="tsk_1_grok", state=task_mod.TaskState.RUNNING, progress=0.4)
    oops = errors.DownloadError("The file host answered 500.")
    disk = OSError(28, "No space left on device")
    return [
        events.RefetchingKeptFiles("tsk_1_grok"),
        events.WaitingForThread(),
        events.WaitingForProcess(4242),
        events.WaitingForProcess(None),
        events.WaitingForTurn(2.46),
        events.WaitingOutRateLimit(10.0),
        events.WaitingForTask("tsk_1_grok", task_mod.TaskState.QUEUED),
        events.FilesLost("tsk_1_grok", 2, 6, oops),
        events.FilesNotKept("tsk_1_grok", 6, 6, Path("/out/grok_imagine"), disk),
        events.TaskUpdated(task, 3.2),
    ]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_a_note_on_the_node_says_what_the_cli_says(event) -> None:
    assert english(event_phrases.note(event)) == events.describe(event)


def test_every_run_event_has_its_words() -> None:
    handled = {
        events.TaskUpdated, events.TaskCreated, events.TaskResumed, events.ResultReused,
        events.Downloading, events.FileKept,
    }  # fmt: skip
    for event_type in events.RunEvent.__args__:
        assert event_type in handled or event_type in event_phrases._NOTES, event_type


@pytest.mark.parametrize("state", list(task_mod.TaskState))
def test_state_words_are_the_clis(state) -> None:
    assert english(event_phrases.task_state(state)) == events.state_word(state)


def result(images: int = 0, **kwargs):
    files = [Path(f"/kept/{index}.jpg") for index in range(images)]
    return runner_mod.TaskResult("tsk_1_grok", files, **kwargs)


@pytest.mark.parametrize(
    "outcome",
    [{"credits": 5}, {"resumed": True}, {"reused": True}, {}],
    ids=["new", "resumed", "reused", "fetched-again"],
)
def test_outcome_words_are_the_clis(outcome) -> None:
    done = result(**outcome)
    assert english(event_phrases.outcome(done)) == events.outcome_word(done)


# -- the browser's renderer ------------------------------------------------------------------------


class Recorder:
    node_id = "5"

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def status(self, status: dict) -> None:
        self.sent.append(json.loads(json.dumps(status)))

    def progress(self, value: float) -> None:
        pass

    def cancelled(self) -> bool:
        return False


def sample_statuses() -> list[dict]:
    hooks = Recorder()
    labels = [phrases.phrase("status.label.task", index=i, count=3) for i in (1, 2, 3)]
    board = status_board.StatusBoard("GrokImagineTextToImage", hooks, labels)
    board.started = time.monotonic() - 7
    for index, event in enumerate(sample_events()):
        board.on_event(index % 3, event)
    board.on_event(0, events.TaskCreated("tsk_1_grok", 5))
    board.finished(0, result(6, credits=5))
    board.failed(1, ERRORS[6])
    board.add_warning(errors.NotAnImageError())
    refused = status_board.StatusBoard("GrokImagineUpscale", hooks, [None])
    refused.refused(ERRORS[0])
    one = status_board.StatusBoard("GrokImagineLoadTask", hooks, [None])
    one.finished(0, result(1, reused=True))
    return hooks.sent


def test_the_browser_words_a_status_as_the_tests_do() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the browser's renderer is checked by tests/e2e")
    statuses = sample_statuses()
    languages = ["en", "zh"]
    script = f"""
        import {{ statusLines }} from {json.dumps(FORMAT_JS.as_uri())};
        import {{ readFileSync }} from 'node:fs';
        const input = JSON.parse(readFileSync(0, 'utf8'));
        const read = (lang, name) =>
            JSON.parse(readFileSync(`${{input.locales}}/${{lang}}/${{name}}.json`, 'utf8'));
        const out = input.languages.map((lang) => {{
            const main = read(lang, 'main');
            const defs = read(lang, 'nodeDefs');
            const words = [main.grokImagine, ...(lang === 'en' ? [] : [input.english])];
            return input.statuses.map((s) => statusLines(words, s, defs[s.nodeType].display_name));
        }});
        process.stdout.write(JSON.stringify(out));
    """
    english_words = json.loads((PACK_DIR / "locales/en/main.json").read_text())["grokImagine"]
    payload = {
        "statuses": statuses,
        "languages": languages,
        "locales": str(PACK_DIR / "locales"),
        "english": english_words,
    }
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    from_js = json.loads(done.stdout)
    for language, lines in zip(languages, from_js, strict=True):
        assert lines == [status_lines(s, language) for s in statuses]
    assert "Daily credit limit reached: spent 12 of 15 credits today" in "\n".join(from_js[0][-2])
    assert "已达每日积分上限" in "\n".join(from_js[1][-2])
