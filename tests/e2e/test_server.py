"""The pack inside a real ComfyUI, driven over ComfyUI's own HTTP API (no browser).

One ComfyUI (``--cpu``, DEBUG logging) and one sandbox serve the whole module; every test uses
prompts of its own, so the journal and ComfyUI's cache never hand one test another's results.
The sandbox tells what was really paid for: its tasks (by prompt) and its create counter.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.api_graphs import GROK_NODES, LOAD_TASK, TEXT_TO_IMAGE, UPSCALE, Graph
from e2e.comfyui_server import PACK_FOLDER_NAME, ComfyUIServer, status_messages
from e2e.sandbox_view import WAIT_S, tasks_with_prompt, unique, wait_for_polling
from e2e.workflow_api import to_api_prompt
from support import PACK_DIR, submodule
from support.keys import TEST_KEY

pytestmark = pytest.mark.e2e

sandbox_config = submodule("sandbox.config")
EXAMPLES_DIR = PACK_DIR / "example_workflows"
CATEGORY = "Grok Imagine"


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def files_under(root: Path, skip: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Every regular file below ``root`` (symlinks not followed, ``skip`` folders left out)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        for name in files:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


# -- the pack loads, and /object_info describes it ------------------------------------------------


def test_startup_log_shows_the_pack_imported_cleanly(comfyui: ComfyUIServer) -> None:
    log = comfyui.log_text(1)
    timing_lines = [line for line in log.splitlines() if line.rstrip().endswith(PACK_FOLDER_NAME)]
    assert timing_lines, f"ComfyUI's import-times list does not name the pack:\n{log[-3000:]}"
    assert all("IMPORT FAILED" not in line for line in timing_lines), timing_lines
    assert not re.search(rf"Cannot import .*{PACK_FOLDER_NAME}", log)
    # No traceback anywhere in the log points into the pack.
    pack_frames = [
        line
        for line in log.splitlines()
        if line.strip().startswith("File ") and (PACK_FOLDER_NAME in line or str(PACK_DIR) in line)
    ]
    assert pack_frames == []


def test_object_info_lists_the_three_nodes_with_tooltips(
    comfyui: ComfyUIServer, timings: Any
) -> None:
    info = comfyui.object_info()
    missing = [name for name in GROK_NODES if name not in info]
    assert missing == [], f"ComfyUI does not list {missing}"
    timings.record("api_node", {name: info[name].get("api_node", False) for name in GROK_NODES})
    for name in GROK_NODES:
        node = info[name]
        assert node["category"].split("/")[0] == CATEGORY, (name, node["category"])
        assert node["display_name"].startswith("API in One · Grok "), node["display_name"]
        if "search_aliases" in node:  # ComfyUIs that read SEARCH_ALIASES (0.33 does)
            assert {"grok", "grok imagine", "api in one", "apiinone"} <= set(node["search_aliases"])
        description = node["description"].lower()
        assert "credit" in description or "free" in description, name  # the cost is stated
        assert node["python_module"].startswith("custom_nodes."), node["python_module"]
        for section in ("required", "optional"):
            for input_name, spec in node["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
        assert node["output_tooltips"] and all(node["output_tooltips"]), name
        assert len(node["output_tooltips"]) == len(node["output"]), name
        assert node["output"][0] == "IMAGE", name

    t2i = info[TEXT_TO_IMAGE]["input"]
    prompt_spec = t2i["required"]["prompt"]
    assert prompt_spec[0] == "STRING" and prompt_spec[1].get("multiline") is True
    seed_spec = t2i["required"]["seed"]
    assert seed_spec[0] == "INT" and seed_spec[1].get("control_after_generate")
    aspect = t2i["optional"]["aspect_ratio"]
    choices = aspect[0] if isinstance(aspect[0], list) else aspect[1]["options"]
    assert set(choices[1:]) == {"1:1", "2:3", "3:2", "16:9", "9:16"}, choices
    assert choices[0] not in sandbox_config.ASPECT_SIZES  # "provider default" is not a ratio
    for name in (UPSCALE, LOAD_TASK):
        inputs = info[name]["input"]
        spec = {**inputs.get("required", {}), **inputs.get("optional", {})}
        assert spec["task_id"][0] == "STRING", name


def test_translations_are_served_the_comfyui_way(comfyui: ComfyUIServer) -> None:
    """ComfyUI merges every pack's ``locales/<lang>/*.json`` into ``/i18n`` for the frontend."""
    served = comfyui.get_json("/api/i18n")
    for language in ("en", "zh"):
        shipped = json.loads((PACK_DIR / "locales" / language / "nodeDefs.json").read_text())
        for name in GROK_NODES:
            assert served[language]["nodeDefs"][name] == shipped[name], (language, name)
        assert "GrokImagine_ApiKey" in served[language]["settings"]
        assert served[language]["grokImagine"]["keyEntry"]["save"]


# -- the example workflows, converted from UI format, through POST /prompt ------------------------


def example_workflows() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def kind_of(workflow: dict[str, Any]) -> str:
    types = {node["type"] for node in workflow["nodes"]}
    if LOAD_TASK in types:
        return "load"
    if UPSCALE in types:
        return "upscale"
    return "text_to_image"


def expected_size(sandbox: Any, task: Any) -> tuple[int, int]:
    if task.model == sandbox_config.UPSCALE:
        width, height = expected_size(sandbox, sandbox.task_info(task.source_task_id))
        return width * 2, height * 2
    return sandbox_config.ASPECT_SIZES[task.aspect_ratio or sandbox_config.DEFAULT_ASPECT_RATIO]


def test_example_workflows_run_and_save_the_right_images(
    comfyui: ComfyUIServer, e2e_sandbox: Any, timings: Any
) -> None:
    paths = example_workflows()
    kinds = {kind_of(json.loads(p.read_text())): p for p in paths}
    assert set(kinds) == {"text_to_image", "upscale", "load"}, [p.name for p in paths]
    info = comfyui.object_info()
    first_task_id = None
    for kind in ("text_to_image", "upscale", "load"):
        workflow = json.loads(kinds[kind].read_text())
        prompt = to_api_prompt(workflow, info)
        if kind == "load":
            assert first_task_id is not None
            for node in prompt.values():
                if node["class_type"] == LOAD_TASK:
                    node["inputs"]["task_id"] = first_task_id  # the example holds a placeholder
        known = set(e2e_sandbox.task_ids())
        creates_before = e2e_sandbox.create_requests
        began = time.monotonic()
        entry = comfyui.run(prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
        timings.record(f"example_{kind}_s", time.monotonic() - began)
        new = [e2e_sandbox.task_info(t) for t in e2e_sandbox.task_ids() if t not in known]
        saved = comfyui.saved_images(entry)
        assert all(p.is_file() for p in saved)

        if kind == "text_to_image":
            (task,) = new
            assert task.model == sandbox_config.TEXT_TO_IMAGE
            first_task_id = task.task_id
            assert len(saved) == task.image_count
            assert {image_size(p) for p in saved} == {expected_size(e2e_sandbox, task)}
        elif kind == "upscale":
            by_model = {t.model: t for t in new}
            assert sorted(by_model) == sorted(
                [sandbox_config.TEXT_TO_IMAGE, sandbox_config.UPSCALE]
            ), new
            source, upscale = (
                by_model[sandbox_config.TEXT_TO_IMAGE],
                by_model[sandbox_config.UPSCALE],
            )
            assert upscale.source_task_id == source.task_id, "Upscale is not wired to Text-to-Image"
            assert len(saved) == upscale.image_count
            assert {image_size(p) for p in saved} == {expected_size(e2e_sandbox, upscale)}
        else:
            assert new == [] and e2e_sandbox.create_requests == creates_before, "Load Task paid"
            previews = [
                comfyui.base_dir / "temp" / image.get("subfolder", "") / image["filename"]
                for out in entry["outputs"].values()
                for image in out.get("images", [])
            ]
            source = e2e_sandbox.task_info(first_task_id)
            assert len(previews) == source.image_count
            assert {image_size(p) for p in previews} == {expected_size(e2e_sandbox, source)}


# -- concurrency ----------------------------------------------------------------------------------


def test_two_independent_grok_nodes_run_concurrently(
    comfyui: ComfyUIServer, e2e_sandbox: Any, timings: Any
) -> None:
    info = comfyui.object_info()
    solo = Graph(info)
    solo.preview(solo.text_to_image(unique("e2e solo lighthouse")))
    entry = comfyui.run(solo.nodes, timeout=WAIT_S)
    one_task_s = _execution_seconds(entry)

    first, second = unique("e2e concurrent fox"), unique("e2e concurrent owl")
    graph = Graph(info)
    graph.preview(graph.text_to_image(first))
    graph.preview(graph.text_to_image(second))
    entry = comfyui.run(graph.nodes, timeout=WAIT_S)
    two_tasks_s = _execution_seconds(entry)
    timings.record("one_task_s", one_task_s)
    timings.record("two_independent_tasks_s", two_tasks_s)

    (a,) = tasks_with_prompt(e2e_sandbox, first)
    (b,) = tasks_with_prompt(e2e_sandbox, second)
    # Sequential execution would create the second task only after the first had finished.
    assert max(a.created_at, b.created_at) < min(a.done_at, b.done_at), (
        f"the tasks did not overlap: one task {one_task_s:.2f} s, two {two_tasks_s:.2f} s"
    )


def _execution_seconds(entry: dict[str, Any]) -> float:
    messages = status_messages(entry)
    return (
        messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]
    ) / 1000


# -- cancel and resume ----------------------------------------------------------------------------


def test_interrupt_ends_the_node_within_a_second_and_requeue_resumes(
    comfyui: ComfyUIServer, e2e_sandbox: Any, timings: Any
) -> None:
    text = unique("e2e interrupted harbour")
    graph = Graph(comfyui.object_info())
    graph.save(graph.text_to_image(text), "e2e-interrupt")
    prompt_id = comfyui.queue(graph.nodes).prompt_id

    task = wait_for_polling(e2e_sandbox, text)
    assert task.state in ("queued", "running"), task.state
    pressed = time.time()
    comfyui.interrupt()
    entry = comfyui.wait_for_history(prompt_id, WAIT_S)
    messages = status_messages(entry)
    assert "execution_interrupted" in messages, messages.keys()
    assert messages["execution_interrupted"]["node_type"] == TEXT_TO_IMAGE
    cancel_s = messages["execution_interrupted"]["timestamp"] / 1000 - pressed
    timings.record("interrupt_to_node_end_s", cancel_s)
    assert cancel_s < 1.0, f"the node took {cancel_s:.2f} s to stop"
    assert "execution_error" not in messages

    reads_at_cancel = e2e_sandbox.task_info(task.task_id).status_reads
    entry = comfyui.run(graph.nodes, timeout=WAIT_S)
    assert [t.task_id for t in tasks_with_prompt(e2e_sandbox, text)] == [task.task_id]
    assert e2e_sandbox.task_info(task.task_id).status_reads >= reads_at_cancel
    saved = comfyui.saved_images(entry)
    assert len(saved) == task.image_count and all(p.is_file() for p in saved)


# -- refused at queue time ------------------------------------------------------------------------


@pytest.mark.parametrize("bad_prompt", ["", "   ", "x" * 5001], ids=["empty", "blank", "5001"])
def test_bad_prompt_is_refused_at_queue_time(
    comfyui: ComfyUIServer, e2e_sandbox: Any, bad_prompt: str
) -> None:
    graph = Graph(comfyui.object_info())
    node = graph.text_to_image(bad_prompt)
    graph.preview(node)
    creates = e2e_sandbox.create_requests
    answer = comfyui.queue(graph.nodes)
    assert answer.status == 400, answer.body
    assert node in answer.node_errors, answer.body
    errors = answer.node_errors[node]["errors"]
    assert errors and all(TEST_KEY not in json.dumps(e) for e in errors)
    assert e2e_sandbox.create_requests == creates


# -- no key anywhere ------------------------------------------------------------------------------


def test_no_key_in_saved_images_workflows_logs_or_files(
    comfyui: ComfyUIServer, e2e_sandbox: Any
) -> None:
    workflow_path = next(
        p for p in example_workflows() if kind_of(json.loads(p.read_text())) == "text_to_image"
    )
    workflow = json.loads(workflow_path.read_text())
    prompt = to_api_prompt(workflow, comfyui.object_info())
    for node in prompt.values():
        if node["class_type"] == TEXT_TO_IMAGE:
            node["inputs"]["prompt"] = unique(node["inputs"]["prompt"])
    entry = comfyui.run(prompt, extra_data={"extra_pnginfo": {"workflow": workflow}})
    saved = comfyui.saved_images(entry)
    assert saved

    from PIL import Image

    for path in saved:
        with Image.open(path) as image:
            text_chunks = dict(getattr(image, "text", {}) or image.info)
        assert "prompt" in text_chunks or path.suffix.lower() != ".png"
        assert TEST_KEY not in json.dumps(text_chunks, default=str)
    for path in example_workflows():
        assert TEST_KEY not in path.read_text()
        assert not re.search(r"sk-[A-Za-z0-9_-]{8,}", path.read_text()), path.name
    leaking = [
        path
        for path in files_under(comfyui.base_dir, skip=(comfyui.base_dir / "custom_nodes",))
        if TEST_KEY.encode() in path.read_bytes()
    ]
    assert leaking == []
    assert TEST_KEY not in comfyui.all_logs()


# -- last: nothing deprecated ---------------------------------------------------------------------


def test_the_v1_nodes_log_no_deprecation_warning(comfyui: ComfyUIServer, e2e_sandbox: Any) -> None:
    """After loading the pack and running its nodes (this module's tests, and one more run of
    all three here), ComfyUI's DEBUG log has no deprecation warning at all."""
    graph = Graph(comfyui.object_info())
    made = graph.text_to_image(unique("e2e deprecation check"))
    task_ids = graph.out(made, "task")
    graph.preview(graph.add(UPSCALE, task_id=task_ids))
    graph.preview(graph.add(LOAD_TASK, task_id=task_ids))
    comfyui.run(graph.nodes, timeout=WAIT_S)
    log = comfyui.all_logs()
    assert [line for line in log.splitlines() if re.search(r"deprecat", line, re.I)] == []
