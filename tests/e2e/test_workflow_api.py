"""The e2e suite's UI -> API workflow converter, checked without ComfyUI (runs in every suite).

The sample below has the shapes the ComfyUI frontend (1.27) saves: widget inputs listed in
``inputs`` with a ``widget`` entry, a seed followed by its ``control_after_generate`` value, a
converted widget fed by a link, array-form links, and a note.
"""

from __future__ import annotations

import pytest
from e2e.workflow_api import UnsupportedWorkflow, to_api_prompt

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
