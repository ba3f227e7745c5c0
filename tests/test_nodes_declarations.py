"""What ComfyUI reads from the node classes: ids, names, inputs, outputs, tooltips, validation."""

from __future__ import annotations

import inspect

import pytest
from support import pack, submodule

validation = submodule("api.validation")

EXPECTED = {
    "GrokImagineTextToImage": "API in One · Grok Text-to-Image",
    "GrokImagineUpscale": "API in One · Grok Upscale",
    "GrokImagineLoadTask": "API in One · Grok Load Task",
}
SEARCHES = ("grok", "grok imagine", "api in one", "apiinone")  # what users type (issue 15)
NODES = pack.NODE_CLASS_MAPPINGS
T2I = NODES["GrokImagineTextToImage"]
UPSCALE = NODES["GrokImagineUpscale"]
LOAD = NODES["GrokImagineLoadTask"]


def all_inputs(node: type) -> dict[str, tuple]:
    spec = node.INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}


def test_ids_and_display_names():
    assert set(NODES) == set(EXPECTED)
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == EXPECTED


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_found_by_what_users_type_and_told_apart_from_comfyuis_grok_nodes(node_id):
    node = NODES[node_id]
    assert set(SEARCHES) <= set(node.SEARCH_ALIASES)
    assert all(alias == alias.lower() and alias.strip() == alias for alias in node.SEARCH_ALIASES)
    # The older frontend searches only the name and the id, and favours the name's start.
    assert node.DISPLAY_NAME.startswith("API in One")
    assert "not one of ComfyUI's own Grok nodes" in node.DESCRIPTION


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_classic_node_shape(node_id):
    node = NODES[node_id]
    assert node.CATEGORY == "Grok Imagine"
    assert len(node.RETURN_TYPES) == len(node.RETURN_NAMES) == len(node.OUTPUT_TOOLTIPS)
    assert node.RETURN_TYPES[0] == "IMAGE"
    assert node.RETURN_NAMES[0] == "images"
    assert all(tip.strip() for tip in node.OUTPUT_TOOLTIPS)
    assert "credit" in node.DESCRIPTION.lower() or "free" in node.DESCRIPTION.lower()
    function = getattr(node, node.FUNCTION)
    assert inspect.iscoroutinefunction(function), "blocking HTTP must leave the event loop free"
    assert node.INPUT_TYPES()["hidden"] == {"unique_id": "UNIQUE_ID"}
    # The result depends only on the inputs: ComfyUI's own caching applies.
    assert not hasattr(node, "IS_CHANGED")
    # Not a Comfy.org partner node: no yellow "API node" framing, no Comfy.org account implied.
    assert not getattr(node, "API_NODE", False)
    assert not getattr(node, "OUTPUT_NODE", False)


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_every_input_has_a_tooltip_and_none_takes_a_key(node_id):
    node = NODES[node_id]
    for name, spec in all_inputs(node).items():
        options = spec[1] if len(spec) > 1 else {}
        assert options.get("tooltip", "").strip(), f"{node_id}.{name} has no tooltip"
        assert "key" not in name.lower(), "the API key must never be a widget"
    signature = inspect.signature(getattr(node, node.FUNCTION))
    for name in all_inputs(node):
        assert name in signature.parameters, f"{node_id}.{node.FUNCTION} lacks {name}"


def test_credit_costs_are_stated():
    assert "5 credits" in T2I.DESCRIPTION
    assert "12 credits" in UPSCALE.DESCRIPTION
    assert "free" in LOAD.DESCRIPTION.lower()


def test_text_to_image_inputs():
    required = T2I.INPUT_TYPES()["required"]
    optional = T2I.INPUT_TYPES()["optional"]
    assert list(required) == ["prompt", "seed"]
    assert required["prompt"][0] == "STRING" and required["prompt"][1]["multiline"] is True
    seed = required["seed"][1]
    assert required["seed"][0] == "INT"
    assert seed["control_after_generate"] is True
    assert seed["min"] == 0 and seed["max"] >= 2**32
    ratios = optional["aspect_ratio"][0]
    assert ratios[0] == "provider default"
    assert ratios[1:] == ["1:1", "2:3", "3:2", "16:9", "9:16"]
    assert optional["aspect_ratio"][1]["default"] == "provider default"
    tasks = optional["parallel_tasks"][1]
    assert (tasks["min"], tasks["max"], tasks["default"]) == (1, 8, 1)
    assert optional["timeout"][0] == "INT"
    assert T2I.RETURN_TYPES == ("IMAGE", "STRING", "STRING")
    assert T2I.RETURN_NAMES == ("images", "task_id", "urls")


def test_upscale_and_load_inputs():
    for node in (UPSCALE, LOAD):
        required = node.INPUT_TYPES()["required"]
        assert list(required) == ["task_id"]
        assert required["task_id"][0] == "STRING"
        assert "optional" not in node.INPUT_TYPES()
    assert UPSCALE.RETURN_TYPES == ("IMAGE", "STRING")
    assert UPSCALE.RETURN_NAMES == ("images", "task_id")
    assert LOAD.RETURN_NAMES == ("images", "task_id", "urls")
    # Text-to-Image's task_id output plugs into Upscale's task_id input: both are STRING.
    assert T2I.RETURN_TYPES[T2I.RETURN_NAMES.index("task_id")] == "STRING"


# -- VALIDATE_INPUTS: refused at queue time, nothing paid ----------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["", "   \n\t ", "x" * (validation.MAX_PROMPT_CHARS + 1), "a cat\x00"],
)
def test_bad_prompts_are_refused_at_queue_time(prompt):
    verdict = T2I.VALIDATE_INPUTS(prompt=prompt)
    assert isinstance(verdict, str) and verdict
    assert "\n" not in verdict


@pytest.mark.parametrize("prompt", ["a red fox in snow", "x" * validation.MAX_PROMPT_CHARS])
def test_good_prompts_pass(prompt):
    assert T2I.VALIDATE_INPUTS(prompt=prompt) is True


def test_wired_inputs_are_checked_when_they_arrive():
    # ComfyUI leaves a linked input out of VALIDATE_INPUTS' arguments.
    assert T2I.VALIDATE_INPUTS() is True
    assert UPSCALE.VALIDATE_INPUTS() is True
    assert LOAD.VALIDATE_INPUTS() is True


@pytest.mark.parametrize(
    "task_id",
    ["", "  ", "../etc/passwd", "a/b", "https://apiin.one/api/v1/tasks/abc", "x" * 200, "ab?c"],
)
@pytest.mark.parametrize("node", [UPSCALE, LOAD], ids=["upscale", "load"])
def test_bad_task_ids_are_refused_at_queue_time(node, task_id):
    verdict = node.VALIDATE_INPUTS(task_id=task_id)
    assert isinstance(verdict, str) and verdict
    assert "\n" not in verdict


@pytest.mark.parametrize(
    "task_id", ["n31abc_grok", "abc123kie\nxyz789kie", "a1, b2, c3", " n31abc_grok \n"]
)
@pytest.mark.parametrize("node", [UPSCALE, LOAD], ids=["upscale", "load"])
def test_good_task_ids_pass(node, task_id):
    assert node.VALIDATE_INPUTS(task_id=task_id) is True


def test_validate_inputs_signatures_name_only_checked_inputs():
    """ComfyUI skips its own min/max checks for inputs VALIDATE_INPUTS names; name only these."""
    assert list(inspect.signature(T2I.VALIDATE_INPUTS).parameters) == ["prompt"]
    assert list(inspect.signature(UPSCALE.VALIDATE_INPUTS).parameters) == ["task_id"]
    assert list(inspect.signature(LOAD.VALIDATE_INPUTS).parameters) == ["task_id"]


def test_task_id_lists_are_split_in_order_without_repeats():
    validation = submodule("api.validation")
    assert validation.split_task_ids("b\na, b;c\r\n\n d ") == ["b", "a", "c", "d"]
    assert validation.split_task_ids("") == []
