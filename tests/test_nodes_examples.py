"""The example workflows ComfyUI lists as templates: UI format, wired right, with thumbnails.

They were saved by ComfyUI's own frontend after a run against the sandbox; running them in a real
ComfyUI is the end-to-end suite's job. Here: they still match the nodes as declared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from support import PACK_DIR, pack

EXAMPLES = PACK_DIR / "example_workflows"
WORKFLOWS = sorted(EXAMPLES.glob("*.json"))
CORE_NODES = {"SaveImage", "PreviewImage", "Note"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_three_workflows_are_there():
    assert [p.stem for p in WORKFLOWS] == [
        "grok_load_task_preview",
        "grok_text_to_image",
        "grok_text_to_image_upscale",
    ]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_thumbnail_of_the_same_name(path):
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file()
    assert thumbnail.stat().st_size < 80_000
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG"
        assert max(image.size) <= 1024


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_ui_format_with_consistent_links(path):
    workflow = load(path)
    assert workflow["version"] == 0.4
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for node in nodes.values():
        assert node["type"] in set(pack.NODE_CLASS_MAPPINGS) | CORE_NODES
    for link_id, source, source_slot, target, target_slot, kind in workflow["links"]:
        assert nodes[source]["outputs"][source_slot]["type"] == kind
        assert link_id in nodes[source]["outputs"][source_slot]["links"]
        assert nodes[target]["inputs"][target_slot]["link"] == link_id


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_grok_nodes_match_their_declarations(path):
    for node in load(path)["nodes"]:
        node_class = pack.NODE_CLASS_MAPPINGS.get(node["type"])
        if node_class is None:
            continue
        spec = node_class.INPUT_TYPES()
        names = [*spec["required"], *spec.get("optional", {})]
        controls = sum(
            1
            for entry in [*spec["required"].values(), *spec.get("optional", {}).values()]
            if len(entry) > 1 and entry[1].get("control_after_generate")
        )
        assert len(node["widgets_values"]) == len(names) + controls
        assert [o["name"] for o in node["outputs"]] == list(node_class.RETURN_NAMES)


def test_upscale_is_wired_from_text_to_image_task_id():
    workflow = load(EXAMPLES / "grok_text_to_image_upscale.json")
    nodes = {node["id"]: node for node in workflow["nodes"]}
    (link,) = [link for link in workflow["links"] if nodes[link[3]]["type"] == "GrokImagineUpscale"]
    source = nodes[link[1]]
    assert source["type"] == "GrokImagineTextToImage"
    assert source["outputs"][link[2]]["name"] == "task_id"
    assert nodes[link[3]]["inputs"][link[4]]["name"] == "task_id"


def test_templates_are_safe_to_queue_twice_and_carry_no_secrets():
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        assert "sk-" not in text and "Bearer" not in text
        for node in load(path)["nodes"]:
            if node["type"] == "GrokImagineTextToImage":
                assert node["widgets_values"][2] == "fixed"  # a second Run is free, not paid
            if node["type"] == "GrokImagineLoadTask":
                assert node["widgets_values"] == [""]  # the user pastes their own task id
