"""The e2e suite's UI -> API workflow converter, checked without ComfyUI (runs in every suite).

The sample below has the shapes the ComfyUI frontend (1.27) saves: widget inputs listed in
``inputs`` with a ``widget`` entry, a seed followed by its ``control_after_generate`` value, a
converted widget fed by a link, array-form links, and a note.

With ``COMFYUI_DIR``, the frozen prompts of saved workflows (``tests/fixtures/saved_workflows``)
are also queued in a real ComfyUI, unchanged, and ``/object_info`` is checked against the one the
no-ComfyUI tests build from the node classes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e.api_graphs import GROK_NODES, LOAD_TASK
from e2e.comfyui_server import ComfyUIServer
from e2e.workflow_api import UnsupportedWorkflow, to_api_prompt
from support.keys import TEST_KEY
from support.object_info import CORE_OBJECT_INFO, SAVED_WORKFLOWS_DIR, pack_object_info

OBJECT_INFO = {
    "Maker": {
        "display_name": "Maker",
        "input": {
            "required": {
                "prompt": ["STRING", {"multiline": True}],
                "seed": ["INT", {"default": 0, "control_after_generate": True}],
            },
            "optional": {
                "aspect_ratio": [["default", "1:1", "16:9"], {}],
                "count": ["INT", {"default": 1}],
                "mask": ["MASK", {}],
            },
        },
        "input_order": {
            "required": ["prompt", "seed"],
            "optional": ["aspect_ratio", "count", "mask"],
        },
        "output": ["IMAGE", "STRING"],
    },
    "Taker": {
        "display_name": "Taker",
        "input": {"required": {"task_id": ["STRING", {}]}},
        "input_order": {"required": ["task_id"]},
        "output": ["IMAGE"],
    },
    "SaveImage": {
        "display_name": "Save Image",
        "input": {
            "required": {
                "images": ["IMAGE", {}],
                "filename_prefix": ["STRING", {"default": "ComfyUI"}],
            }
        },
        "input_order": {"required": ["images", "filename_prefix"]},
        "output": [],
    },
}

WORKFLOW = {
    "nodes": [
        {
            "id": 1,
            "type": "Maker",
            "mode": 0,
            "inputs": [{"name": "prompt", "widget": {"name": "prompt"}, "link": None}],
            "widgets_values": ["a red fox", 42, "randomize", "16:9", 2],
        },
        {
            "id": 2,
            "type": "Taker",
            "mode": 0,
            "inputs": [{"name": "task_id", "widget": {"name": "task_id"}, "link": 7}],
            "widgets_values": ["placeholder"],
        },
        {
            "id": 3,
            "type": "SaveImage",
            "mode": 0,
            "inputs": [{"name": "images", "link": 8}],
            "widgets_values": ["grok"],
        },
        {"id": 4, "type": "MarkdownNote", "mode": 0, "widgets_values": ["# read me"]},
    ],
    "links": [[7, 1, 1, 2, 0, "STRING"], [8, 2, 0, 3, 0, "IMAGE"]],
}


def test_widgets_links_and_the_seed_control_value() -> None:
    prompt = to_api_prompt(WORKFLOW, OBJECT_INFO)
    assert set(prompt) == {"1", "2", "3"}
    assert prompt["1"]["inputs"] == {
        "prompt": "a red fox",
        "seed": 42,
        "aspect_ratio": "16:9",
        "count": 2,
    }
    assert prompt["2"]["inputs"] == {"task_id": ["1", 1]}  # the link wins over the widget
    assert prompt["3"] == {
        "class_type": "SaveImage",
        "inputs": {"images": ["2", 0], "filename_prefix": "grok"},
        "_meta": {"title": "Save Image"},
    }


def test_object_links_are_understood() -> None:
    workflow = {
        **WORKFLOW,
        "links": [
            {"id": 7, "origin_id": 1, "origin_slot": 1, "target_id": 2, "target_slot": 0},
            {"id": 8, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0},
        ],
    }
    assert to_api_prompt(workflow, OBJECT_INFO) == to_api_prompt(WORKFLOW, OBJECT_INFO)


def test_without_the_control_value_nothing_shifts() -> None:
    node = {**WORKFLOW["nodes"][0], "widgets_values": ["a red fox", 42, "1:1", 3]}
    prompt = to_api_prompt({"nodes": [node], "links": []}, OBJECT_INFO)
    assert prompt["1"]["inputs"]["aspect_ratio"] == "1:1"
    assert prompt["1"]["inputs"]["count"] == 3


@pytest.mark.parametrize(
    "node",
    [
        {"id": 9, "type": "Unknown", "mode": 0, "widgets_values": []},
        {"id": 9, "type": "Taker", "mode": 4, "widgets_values": ["x"]},
        {"id": 9, "type": "Taker", "mode": 0, "widgets_values": ["x", "extra"]},
    ],
    ids=["unknown-type", "bypassed", "surplus-values"],
)
def test_what_it_cannot_convert_is_refused(node: dict) -> None:
    with pytest.raises(UnsupportedWorkflow):
        to_api_prompt({"nodes": [node], "links": []}, OBJECT_INFO)


# -- in a real ComfyUI: the frozen prompts of saved workflows -------------------------------------


@pytest.fixture(scope="module")
def fresh_comfyui(comfyui_factory: Callable[..., ComfyUIServer]) -> Iterator[ComfyUIServer]:
    """A ComfyUI with a journal of its own: other e2e files queue the same example prompts, and
    here they must pay as a new user's would. Stopped at the end of this module."""
    server = comfyui_factory("saved-workflows")
    yield server
    server.stop()


def saved(kind: str, name: str) -> dict[str, Any]:
    return json.loads((SAVED_WORKFLOWS_DIR / kind / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.e2e
def test_object_info_built_from_the_classes_is_what_comfyui_serves(
    fresh_comfyui: ComfyUIServer,
) -> None:
    served = fresh_comfyui.object_info()
    for name, built in pack_object_info().items():
        assert name in GROK_NODES
        assert {key: served[name].get(key) for key in built} == built, name
    for name, frozen in json.loads(CORE_OBJECT_INFO.read_text(encoding="utf-8")).items():
        assert served[name]["input_order"] == frozen["input_order"], name
        # Newer ComfyUIs may add outputs (0.33's SaveImage passes its IMAGE through); the
        # frozen ones keep their slots, so the links of saved workflows still hold.
        served_outputs = served[name]["output"]
        assert served_outputs[: len(frozen["output"])] == frozen["output"], name


@pytest.mark.e2e
def test_saved_prompts_run_unchanged(fresh_comfyui: ComfyUIServer, e2e_sandbox: Any) -> None:
    from PIL import Image

    def run(name: str, prompt: dict[str, Any]) -> tuple[dict[str, Any], list[Any], int]:
        """History entry, the tasks it created, the credits it was charged."""
        known, paid = set(e2e_sandbox.task_ids()), e2e_sandbox.ledger(TEST_KEY).credits_charged
        entry = fresh_comfyui.run(
            prompt, extra_data={"extra_pnginfo": {"workflow": saved("ui", name)}}, timeout=240.0
        )
        new = [e2e_sandbox.task_info(t) for t in e2e_sandbox.task_ids() if t not in known]
        return entry, new, e2e_sandbox.ledger(TEST_KEY).credits_charged - paid

    def sizes(entry: dict[str, Any]) -> list[tuple[int, int]]:
        found = []
        for path in fresh_comfyui.saved_images(entry):
            with Image.open(path) as image:
                found.append(image.size)
        return found

    name = "grok_text_to_image"
    entry, (task,), credits = run(name, saved("api", name))
    assert credits == 5 and task.aspect_ratio is None  # "provider default" sends no ratio
    assert sizes(entry) == [(1024, 1024)] * task.image_count  # the sandbox's default, 1:1

    name = "grok_text_to_image_upscale"
    entry, new, credits = run(name, saved("api", name))
    assert credits == 17 and sorted(t.aspect_ratio or "" for t in new) == ["", "3:2"]
    (upscale,) = [t for t in new if t.source_task_id is not None]
    assert upscale.source_task_id in {t.task_id for t in new}  # wired from Text-to-Image
    assert sizes(entry) == [(2592, 1728)]  # 3:2 is 1296 x 864; upscaled twice, one image

    name = "grok_load_task_preview"
    placeholder = saved("api", name)
    creates = e2e_sandbox.create_requests
    answer = fresh_comfyui.queue(placeholder)  # the template's empty task id, as saved
    assert answer.status == 400 and list(answer.node_errors) == ["1"], answer.body
    assert e2e_sandbox.create_requests == creates
    pasted = json.loads(json.dumps(placeholder))
    (load_id,) = [i for i, n in pasted.items() if n["class_type"] == LOAD_TASK]
    pasted[load_id]["inputs"]["task_id"] = task.task_id  # what its note asks the user to do
    entry, new, credits = run(name, pasted)
    assert (new, credits) == ([], 0)
    previews = [i for out in entry["outputs"].values() for i in out.get("images", [])]
    assert len(previews) == task.image_count
