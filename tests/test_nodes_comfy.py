"""The nodes inside a stand-in ComfyUI: status, progress bar, Cancel, folders.

The stand-in provides just the names the pack looks up (``folder_paths``, ``server.PromptServer``,
``comfy.utils.ProgressBar``, ``comfy.model_management``) and behaves like ComfyUI 0.3.x where it
matters: its progress-bar hook raises ``InterruptProcessingException`` (clearing the flag) when
Cancel was pressed. The HTTP side is the real sandbox.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from support import pack, submodule
from support.keys import TEST_KEY
from support.status_text import status_text

execution = submodule("nodes.execution")
comfy_hooks = submodule("nodes.comfy_hooks")
comfy_paths = submodule("nodes.comfy_paths")

T2I = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]
UPSCALE = pack.NODE_CLASS_MAPPINGS["GrokImagineUpscale"]
LOAD = pack.NODE_CLASS_MAPPINGS["GrokImagineLoadTask"]
GENEROUS_S = 10.0  # a bound for waits on a busy machine; the promise itself is 1 s


class FakeComfyUI:
    """The few ComfyUI names the pack uses, recording what the nodes send."""

    class InterruptProcessingException(Exception):
        pass

    def __init__(self, root: Path) -> None:
        self.user_dir = root / "user"
        self.output_dir = root / "output"
        self.statuses: list[dict] = []
        self.bars: list[tuple[int, int, str | None]] = []
        self.interrupted = False
        self._lock = threading.Lock()

    def modules(self) -> dict[str, types.ModuleType]:
        fake = self

        folder_paths = types.ModuleType("folder_paths")
        folder_paths.get_user_directory = lambda: str(fake.user_dir)
        folder_paths.get_output_directory = lambda: str(fake.output_dir)

        class PromptServer:
            instance = None

            def send_sync(self, event, data, sid=None):
                assert event == comfy_hooks.STATUS_EVENT
                with fake._lock:
                    fake.statuses.append(data)

        PromptServer.instance = PromptServer()
        server = types.ModuleType("server")
        server.PromptServer = PromptServer

        management = types.ModuleType("comfy.model_management")
        management.InterruptProcessingException = FakeComfyUI.InterruptProcessingException
        management.processing_interrupted = lambda: fake.interrupted

        def interrupt_current_processing(value=True):
            fake.interrupted = value

        def throw_exception_if_processing_interrupted():
            if fake.interrupted:
                fake.interrupted = False
                raise FakeComfyUI.InterruptProcessingException()

        management.interrupt_current_processing = interrupt_current_processing
        management.throw_exception_if_processing_interrupted = (
            throw_exception_if_processing_interrupted
        )

        class ProgressBar:
            def __init__(self, total, node_id=None):
                self.total, self.node_id = total, node_id

            def update_absolute(self, value, total=None, preview=None):
                if total is not None:
                    self.total = total
                throw_exception_if_processing_interrupted()  # what ComfyUI's hook does
                with fake._lock:
                    fake.bars.append((value, self.total, self.node_id))

        utils = types.ModuleType("comfy.utils")
        utils.ProgressBar = ProgressBar
        comfy = types.ModuleType("comfy")
        comfy.utils, comfy.model_management = utils, management
        return {
            "folder_paths": folder_paths,
            "server": server,
            "comfy": comfy,
            "comfy.utils": utils,
            "comfy.model_management": management,
        }

    def texts_for(self, node_id: str) -> list[str]:
        """What an English UI shows on the node, status by status."""
        with self._lock:
            return [status_text(s) for s in self.statuses if s["node"] == node_id]


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    fake = FakeComfyUI(tmp_path)
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delenv("GROK_IMAGINE_KEY_FILE", raising=False)
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "not-used-inside-comfyui"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.delenv("APIINONE_API_KEY", raising=False)
    yield fake
    comfy_hooks.set_test_interrupt(False)
    execution.close_journals()


@pytest.fixture
def grok(sandbox_factory, monkeypatch):
    def start(**config):
        config.setdefault("images_per_task", 2)
        sb = sandbox_factory(**config)
        monkeypatch.setenv("APIINONE_API_KEY", TEST_KEY)
        monkeypatch.setenv("APIINONE_BASE_URL", sb.base_url)
        return sb

    return start


@pytest.fixture
def plain(tmp_path, monkeypatch):
    """Outside ComfyUI (no stand-in): journal in the test's folder."""
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "no-key"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    yield tmp_path / "home"
    comfy_hooks.set_test_interrupt(False)
    execution.close_journals()


class NodeThread(threading.Thread):
    """Runs one node call in its own event loop, as ComfyUI's worker thread would."""

    def __init__(self, call):
        super().__init__(daemon=True)
        self.call = call
        self.result = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None

    def run(self):
        try:
            self.result = asyncio.run(self.call())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + GENEROUS_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


# -- where things live inside ComfyUI --------------------------------------------------------------


def test_paths_follow_comfyui_folders(comfy):
    assert "folder_paths" in sys.modules
    assert comfy_paths.key_file_path() == comfy.user_dir / "grok_imagine" / "api_key"
    assert comfy_paths.journal_file_path() == comfy.user_dir / "grok_imagine" / "journal.sqlite"
    assert comfy_paths.files_dir() == comfy.output_dir / "grok_imagine"
    # outside user/default/, which ComfyUI's /userdata API serves
    assert (comfy.user_dir / "default") not in comfy_paths.key_file_path().parents


def test_paths_outside_comfyui(plain, monkeypatch, tmp_path):
    assert "folder_paths" not in sys.modules
    assert comfy_paths.journal_file_path() == plain / "journal.sqlite"
    assert comfy_paths.files_dir() == plain / "files"
    assert comfy_paths.key_file_path() == tmp_path / "no-key"
    monkeypatch.delenv("GROK_IMAGINE_KEY_FILE")
    assert comfy_paths.key_file_path().name == "api_key"


def test_a_run_inside_comfyui_uses_its_folders(comfy, grok):
    grok()
    _, task_id, _ = asyncio.run(T2I().generate("a lighthouse", 3, unique_id="5"))
    assert (comfy.user_dir / "grok_imagine" / "journal.sqlite").is_file()
    kept = sorted(p.name for p in (comfy.output_dir / "grok_imagine" / task_id).iterdir())
    assert kept == [".request.json", "0.jpg", "1.jpg"]  # the images and the task's own record


def test_key_file_in_comfyui_user_dir_is_used(comfy, sandbox_factory, monkeypatch):
    sb = sandbox_factory(images_per_task=1)
    monkeypatch.setenv("APIINONE_BASE_URL", sb.base_url)
    key_file = comfy.user_dir / "grok_imagine" / "api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(TEST_KEY)
    key_file.chmod(0o600)
    images, _, _ = asyncio.run(T2I().generate("a lighthouse", 3))
    assert images.shape[0] == 1


def test_missing_key_message_inside_comfyui_names_the_settings_entry(comfy, sandbox, monkeypatch):
    monkeypatch.setenv("APIINONE_BASE_URL", sandbox.base_url)
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(T2I().generate("a lighthouse", 3))
    assert "Settings" in str(caught.value)
    assert str(comfy.user_dir / "grok_imagine" / "api_key") in str(caught.value)
    assert sandbox.create_requests == 0


# -- progress text and progress bar ----------------------------------------------------------------


def test_status_text_shows_state_task_id_and_credits(comfy, grok):
    grok(generation_time=0.4)
    _, task_id, _ = asyncio.run(T2I().generate("a lighthouse", 3, unique_id="12"))
    texts = comfy.texts_for("12")
    assert texts, "no progress text was sent"
    assert all(text.startswith(T2I.DISPLAY_NAME) for text in texts)
    running = [t for t in texts if "running" in t or "queued" in t]
    assert running and any(f"task {task_id}" in t for t in running)
    assert any("5 credits" in t for t in texts)
    assert "done, 2 images" in texts[-1]
    assert all(TEST_KEY not in text for text in texts)
    # queued again: the journal's images, and the text says so
    asyncio.run(T2I().generate("a lighthouse", 3, unique_id="13"))
    assert "no charge" in comfy.texts_for("13")[-1]


def test_status_text_has_a_line_per_parallel_task(comfy, grok):
    grok()
    asyncio.run(T2I().generate("a lighthouse", 3, parallel_tasks=3, unique_id="7"))
    last = comfy.texts_for("7")[-1].splitlines()
    assert len(last) == 4
    assert [line.split(" · ")[0] for line in last[1:]] == ["task 1/3", "task 2/3", "task 3/3"]


def test_progress_bar_climbs_to_full(comfy, grok):
    grok()
    asyncio.run(T2I().generate("a lighthouse", 3, parallel_tasks=2, unique_id="8"))
    bars = [(value, total) for value, total, node in comfy.bars if node == "8"]
    assert bars
    values = [value for value, _ in bars]
    assert values == sorted(values)
    assert bars[-1] == (200, 200)


def test_upscale_and_load_report_too(comfy, grok):
    grok()
    _, task_id, _ = asyncio.run(T2I().generate("a lighthouse", 3))
    asyncio.run(UPSCALE().upscale(task_id, unique_id="21"))
    assert any("12 credits" in text for text in comfy.texts_for("21"))
    assert comfy.texts_for("21")[-1].startswith(UPSCALE.DISPLAY_NAME)
    asyncio.run(LOAD().load(task_id, unique_id="22"))
    assert comfy.texts_for("22")[-1].startswith(LOAD.DISPLAY_NAME)


# -- Cancel ----------------------------------------------------------------------------------------


def start_and_wait_for_task(sb, call) -> NodeThread:
    node = NodeThread(call)
    node.start()
    wait_until(lambda: sb.task_ids(), "the task was created")
    wait_until(lambda: sb.task_info(sb.task_ids()[0]).status_reads > 0, "the task was polled")
    return node


def test_cancel_in_comfyui_stops_the_node_and_keeps_the_task(comfy, grok):
    sb = grok(generation_time=2.0)
    node = start_and_wait_for_task(sb, lambda: T2I().generate("a lighthouse", 3, unique_id="3"))
    comfy.interrupted = True
    pressed = time.monotonic()
    node.join(GENEROUS_S)
    assert not node.is_alive(), "Cancel did not stop the node"
    assert isinstance(node.error, FakeComfyUI.InterruptProcessingException)
    print(f"node stopped {node.ended_at - pressed:.2f} s after Cancel")
    (task_id,) = sb.task_ids()
    assert sb.task_info(task_id).state in ("queued", "running")  # not cancelled server-side

    comfy.interrupted = False  # ComfyUI clears it when the next prompt starts
    images, again_id, _ = asyncio.run(T2I().generate("a lighthouse", 3, unique_id="3"))
    assert again_id == task_id
    assert images.shape[0] == 2
    assert sb.ledger(TEST_KEY).creates == 1  # resumed, not paid twice


def test_cancel_from_another_thread_outside_comfyui(plain, grok):
    sb = grok(generation_time=2.0)
    node = start_and_wait_for_task(sb, lambda: T2I().generate("a lighthouse", 3))
    comfy_hooks.set_test_interrupt(True)
    node.join(GENEROUS_S)
    assert not node.is_alive(), "Cancel did not stop the node"
    assert isinstance(node.error, comfy_hooks.Interrupted)
    comfy_hooks.set_test_interrupt(False)
    _, task_id, _ = asyncio.run(T2I().generate("a lighthouse", 3))
    assert sb.task_ids() == [task_id]


def test_cancel_stops_every_parallel_task_even_when_the_bar_hook_eats_the_flag(comfy, grok):
    """ComfyUI's progress-bar hook clears the flag as it raises: all tasks must still stop,
    and the flag is put back for the other nodes of the prompt."""
    sb = grok(generation_time=2.0)
    node = NodeThread(lambda: T2I().generate("a lighthouse", 3, parallel_tasks=3, unique_id="4"))
    node.start()
    wait_until(lambda: len(sb.task_ids()) == 3, "three tasks were created")
    comfy.interrupted = True
    node.join(GENEROUS_S)
    assert not node.is_alive()
    assert isinstance(node.error, FakeComfyUI.InterruptProcessingException)
    assert comfy.interrupted, "the Cancel flag must stay up for the rest of the prompt"


def test_cancel_while_waiting_for_another_run_of_the_same_request(plain, grok):
    """A second node asking for the same paid request waits for the first; Cancel stops it."""
    sb = grok(generation_time=2.0)
    first = start_and_wait_for_task(sb, lambda: T2I().generate("a lighthouse", 3))
    second = NodeThread(lambda: T2I().generate("a lighthouse", 3))
    second.start()
    time.sleep(0.3)
    comfy_hooks.set_test_interrupt(True)
    for node in (first, second):
        node.join(GENEROUS_S)
        assert not node.is_alive()
        assert isinstance(node.error, comfy_hooks.Interrupted)
    assert sb.ledger(TEST_KEY).creates == 1


def test_event_loop_cancelling_the_node_stops_its_worker(plain, grok):
    sb = grok(generation_time=1.5)

    async def give_up_early():
        task = asyncio.ensure_future(T2I().generate("a lighthouse", 3))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(give_up_early())
    assert sb.ledger(TEST_KEY).creates == 1
    _, task_id, _ = asyncio.run(T2I().generate("a lighthouse", 3))
    assert sb.task_ids() == [task_id]


def test_status_text_can_never_become_markup(comfy):
    """Server-made parts of the status (failure reasons) must stay text wherever it is shown."""
    hooks = comfy_hooks.NodeHooks("9")
    reason = 'failed · <img src=x onerror="alert(1)"> & <script>'
    hooks.status({"nodeType": "GrokImagineLoadTask", "seconds": 1, "refusal": reason})
    (sent,) = comfy.texts_for("9")
    assert "<" not in sent and ">" not in sent
    assert "img src=x" in sent


def test_hooks_are_silent_outside_comfyui(plain):
    hooks = comfy_hooks.NodeHooks("9")
    hooks.status({"seconds": 0})
    hooks.progress(50)
    assert not hooks.cancelled()
    assert isinstance(comfy_hooks.interrupt_exception(), comfy_hooks.Interrupted)


# -- images decoded as they arrive -----------------------------------------------------------------


def test_each_fresh_file_is_decoded_once_and_a_kept_result_from_its_paths(comfy, grok, monkeypatch):
    """A fresh download is decoded once, by the journal's check before it is kept; the node
    writes those pixels as the file is kept instead of decoding it again. A result kept from an
    earlier run is decoded from its files, on the decode pool."""
    tensors = submodule("nodes.image_tensors")
    verify = submodule("journal.verify")
    result_files = submodule("journal.result_files")
    open_header, decoded_header = tensors._open_header, tensors._decoded_header
    check = verify.verify_image
    seen: list[tuple[str, str]] = []

    def spy_open(source, *args, **kwargs):
        seen.append(("node decodes " + type(source).__name__, threading.current_thread().name))
        return open_header(source, *args, **kwargs)

    def spy_decoded(image, *args, **kwargs):
        seen.append(("already decoded", threading.current_thread().name))
        return decoded_header(image, *args, **kwargs)

    def spy_check(*args, **kwargs):
        seen.append(("journal decodes", threading.current_thread().name))
        return check(*args, **kwargs)

    monkeypatch.setattr(tensors, "_open_header", spy_open)
    monkeypatch.setattr(tensors, "_decoded_header", spy_decoded)
    monkeypatch.setattr(result_files, "verify_image", spy_check)
    sb = grok()
    first, task_ids, _ = asyncio.run(T2I().generate("a lighthouse", 3, parallel_tasks=2))
    assert first.shape[0] == 4
    assert sorted(kind for kind, _ in seen) == ["already decoded"] * 4 + ["journal decodes"] * 4
    assert all(thread.startswith("grok-download") for _, thread in seen)
    seen.clear()
    again, again_ids, _ = asyncio.run(T2I().generate("a lighthouse", 3, parallel_tasks=2))
    assert again_ids == task_ids
    assert torch_equal(again, first)
    assert len(seen) == 4
    assert all(kind.startswith("node decodes") and kind.endswith("Path") for kind, _ in seen)
    assert all(thread.startswith("grok-imagine-decode") for _, thread in seen)
    ledger = sb.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (2, 10)


def test_an_image_that_cannot_be_decoded_is_left_out_named_and_the_rest_returned(comfy, grok):
    sb = grok()
    good, good_id, _ = asyncio.run(T2I().generate("a lighthouse", 1))
    sb.faults.download = "bomb"  # a valid PNG header claiming hundreds of megapixels
    with pytest.raises(RuntimeError) as caught:
        asyncio.run(T2I().generate("a lighthouse", 2))
    assert "\n" not in str(caught.value) and TEST_KEY not in str(caught.value)
    (bad_id,) = [task for task in sb.task_ids() if task != good_id]

    images, _, _ = asyncio.run(LOAD().load(f"{good_id}\n{bad_id}", unique_id="31"))
    assert torch_equal(images, good)  # the good task's images, the bad one's left out
    last = comfy.texts_for("31")[-1]
    assert bad_id in last and good_id in last
    assert TEST_KEY not in last
    ledger = sb.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (2, 10)


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_a_second_run_of_the_same_kind_returns_its_own_batch(comfy, grok):
    sb = grok()
    first, _, _ = asyncio.run(T2I().generate("a lighthouse", 3, aspect_ratio="16:9"))
    again, _, _ = asyncio.run(
        T2I().generate("a lighthouse", 4, aspect_ratio="16:9", parallel_tasks=2)
    )
    assert again.shape[0] == 4 and tuple(again.shape[1:3]) == tuple(first.shape[1:3])
    assert sb.ledger(TEST_KEY).creates == 3
