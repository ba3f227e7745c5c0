"""Workflows users saved with the release keep working with today's nodes.

``tests/fixtures/saved_workflows/`` holds the three example workflows as release 182d5dd shipped
them (``ui/``, what the canvas saves) and the prompts ComfyUI queued for them (``api/``, what
``POST /prompt`` takes). They are frozen: a user's saved file never changes, so neither do they.
Here, against the current declarations: the widgets load as the same named values, every value is
still accepted, the UI file converts to the same prompt, and the prompt runs unchanged against the
sandbox with the same creates and credits. The e2e suite queues the same prompts in a real ComfyUI.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from e2e.workflow_api import to_api_prompt
from support import pack, submodule
from support.keys import TEST_KEY
from support.object_info import SAVED_WORKFLOWS_DIR, object_info

execution = submodule("nodes.execution")

NAMES = ("grok_load_task_preview", "grok_text_to_image", "grok_text_to_image_upscale")
GROK = pack.NODE_CLASS_MAPPINGS
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
PLACEHOLDER = ("grok_load_task_preview", "1", "task_id")
"""The one value the release refuses too: Load Task's empty id, which the template asks the user
to fill in (its note says so). Everything else in the frozen files must be accepted as it is."""
IMAGES_PER_TASK = 2


def ui_workflow(name: str) -> dict[str, Any]:
    return json.loads((SAVED_WORKFLOWS_DIR / "ui" / f"{name}.json").read_text(encoding="utf-8"))


def api_prompt(name: str) -> dict[str, Any]:
    return json.loads((SAVED_WORKFLOWS_DIR / "api" / f"{name}.json").read_text(encoding="utf-8"))


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def declared(spec_sections: Mapping[str, Any]) -> dict[str, Any]:
    """Required then optional inputs, in declaration order (what the canvas lays out)."""
    return {**spec_sections.get("required", {}), **(spec_sections.get("optional") or {})}


def options_of(spec: Any) -> Mapping[str, Any]:
    options = spec[1] if len(spec) > 1 else {}
    return options if isinstance(options, Mapping) else {}


def is_widget(spec: Any) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or (
        kind in WIDGET_TYPES and not options_of(spec).get("forceInput")
    )


def refusal(spec: Any, value: Any) -> str | None:
    """Why ``value`` does not fit the declared type, range or choices (None: it fits)."""
    kind, options = spec[0], options_of(spec)
    if isinstance(kind, list):
        return None if value in kind else f"{value!r} is not one of {kind}"
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}.get(kind)
    if expected is None:
        return f"{kind} is not a widget type; it needs a link"
    if not isinstance(value, expected) or (kind != "BOOLEAN" and isinstance(value, bool)):
        return f"{value!r} is not {kind}"
    if kind in ("INT", "FLOAT"):
        if "min" in options and value < options["min"]:
            return f"{value} is below the minimum {options['min']}"
        if "max" in options and value > options["max"]:
            return f"{value} is above the maximum {options['max']}"
    return None


def validate_inputs(node_class: type, values: Mapping[str, Any]) -> bool | str:
    """``VALIDATE_INPUTS`` called as ComfyUI calls it: the unlinked values it names."""
    check = getattr(node_class, "VALIDATE_INPUTS", None)
    if check is None:
        return True
    wanted = inspect.signature(check).parameters
    return check(**{name: value for name, value in values.items() if name in wanted})


def named_widget_values(node_class: type, values: list[Any]) -> dict[str, Any]:
    """``widgets_values`` onto today's declarations, as the canvas does when it loads a file."""
    named: dict[str, Any] = {}
    position = 0
    for name, spec in declared(node_class.INPUT_TYPES()).items():
        if not is_widget(spec):
            continue
        assert position < len(values), f"{name} has no saved value"
        named[name] = values[position]
        position += 1
        if options_of(spec).get("control_after_generate"):
            assert values[position] in CONTROL_VALUES, (name, values[position])
            position += 1
    assert position == len(values), f"saved values nothing declares: {values[position:]}"
    return named


def grok_nodes(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [node for node in workflow["nodes"] if node["type"] in GROK]


# -- the files themselves -------------------------------------------------------------------------


def test_the_frozen_files_are_unchanged():
    sums = (SAVED_WORKFLOWS_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    listed = dict(reversed(line.split(maxsplit=1)) for line in sums)
    on_disk = {str(p.relative_to(SAVED_WORKFLOWS_DIR)) for p in SAVED_WORKFLOWS_DIR.rglob("*.json")}
    assert on_disk == set(listed)
    for relative, digest in listed.items():
        data = (SAVED_WORKFLOWS_DIR / relative).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{relative} was changed"
    assert {f"ui/{n}.json" for n in NAMES} | {f"api/{n}.json" for n in NAMES} <= set(listed)


# -- UI format: loads with the same widget values -------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_widgets_load_as_the_same_named_values(name):
    workflow, prompt = ui_workflow(name), api_prompt(name)
    assert grok_nodes(workflow)
    for node in grok_nodes(workflow):
        node_class = GROK[node["type"]]
        named = named_widget_values(node_class, node["widgets_values"])
        linked = {slot["name"] for slot in node["inputs"] if slot.get("link") is not None}
        frozen = prompt[str(node["id"])]["inputs"]
        assert {k: v for k, v in named.items() if k not in linked} == {
            k: v for k, v in frozen.items() if not is_link(v)
        }
        specs = declared(node_class.INPUT_TYPES())
        for input_name, value in named.items():
            assert refusal(specs[input_name], value) is None, (node["type"], input_name)
        answer = validate_inputs(node_class, {k: v for k, v in named.items() if k not in linked})
        if (name, str(node["id"]), "task_id") == PLACEHOLDER:
            assert isinstance(answer, str) and "task id" in answer and "\n" not in answer
        else:
            assert answer is True, (node["type"], answer)


@pytest.mark.parametrize("name", NAMES)
def test_links_still_join_outputs_of_the_same_type(name):
    workflow = ui_workflow(name)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    for _, source, slot, target, target_slot, kind in workflow["links"]:
        if nodes[source]["type"] in GROK:
            assert GROK[nodes[source]["type"]].RETURN_TYPES[slot] == kind
        if nodes[target]["type"] in GROK:
            input_name = nodes[target]["inputs"][target_slot]["name"]
            assert declared(GROK[nodes[target]["type"]].INPUT_TYPES())[input_name][0] == kind


def without_titles(prompt: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt minus ``_meta``: its title is the node's display name of the day, which
    ComfyUI only shows and never runs, so renaming a node may change it."""
    return {key: {k: v for k, v in node.items() if k != "_meta"} for key, node in prompt.items()}


@pytest.mark.parametrize("name", NAMES)
def test_the_ui_file_converts_to_the_frozen_prompt(name):
    converted = to_api_prompt(ui_workflow(name), object_info())
    assert without_titles(converted) == without_titles(api_prompt(name))


# -- API format: accepted as queued --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_queued_input_is_accepted(name):
    prompt, info = api_prompt(name), object_info()
    for node_id, node in prompt.items():
        specs = declared(info[node["class_type"]]["input"])
        required = info[node["class_type"]]["input"].get("required", {})
        assert set(required) <= set(node["inputs"]), (node_id, "a required input is missing")
        for input_name, value in node["inputs"].items():
            assert input_name in specs, (node_id, input_name, "is no longer declared")
            if is_link(value):
                source = prompt[value[0]]
                assert info[source["class_type"]]["output"][value[1]] == specs[input_name][0]
            else:
                assert refusal(specs[input_name], value) is None, (node_id, input_name)
        if node["class_type"] in GROK:
            values = {k: v for k, v in node["inputs"].items() if not is_link(v)}
            answer = validate_inputs(GROK[node["class_type"]], values)
            assert answer is True or (name, node_id, "task_id") == PLACEHOLDER, answer


# -- API format: runs unchanged against the sandbox ----------------------------------------------


def run_order(prompt: Mapping[str, Any]) -> list[str]:
    """The Grok nodes, each after the nodes its links come from."""
    done: list[str] = []
    pending = [node_id for node_id, node in prompt.items() if node["class_type"] in GROK]
    while pending:
        ready = [
            node_id
            for node_id in pending
            if all(v[0] in done for v in prompt[node_id]["inputs"].values() if is_link(v))
        ]
        assert ready, f"links into Grok nodes from nodes that do not run here: {pending}"
        done += ready
        pending = [node_id for node_id in pending if node_id not in ready]
    return done


async def run_prompt(prompt: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Each Grok node's FUNCTION with the prompt's inputs, links resolved as ComfyUI resolves
    them (the source's output at that slot), hidden ``UNIQUE_ID`` the node id."""
    outputs: dict[str, tuple[Any, ...]] = {}
    for node_id in run_order(prompt):
        node_class = GROK[prompt[node_id]["class_type"]]
        kwargs = {
            name: outputs[value[0]][value[1]] if is_link(value) else value
            for name, value in prompt[node_id]["inputs"].items()
        }
        for name, kind in node_class.INPUT_TYPES().get("hidden", {}).items():
            if kind == "UNIQUE_ID":
                kwargs[name] = node_id
        call = getattr(node_class(), node_class.FUNCTION)(**kwargs)
        assert inspect.isawaitable(call), "Grok nodes are coroutines, so they wait concurrently"
        outputs[node_id] = await call
    return outputs


def images_shown(prompt: Mapping[str, Any], outputs: Mapping[str, tuple[Any, ...]]) -> dict:
    """What each Save/Preview node of the prompt would get: node id -> IMAGE tensor."""
    shown = {}
    for node_id, node in prompt.items():
        if node["class_type"] not in GROK:
            source, slot = node["inputs"]["images"]
            shown[node_id] = outputs[source][slot]
    return shown


@dataclass(frozen=True)
class Expected:
    creates: int
    credits: int
    shapes: dict[str, tuple[int, int, int, int]]  # Save/Preview node id -> (batch, h, w, 3)
    aspect_ratio: str | None  # what the sandbox was asked for


EXPECTED = {
    # "provider default" sends no ratio; the sandbox answers 1024 x 1024.
    "grok_text_to_image": Expected(1, 5, {"2": (IMAGES_PER_TASK, 1024, 1024, 3)}, None),
    # 3:2 is 1296 x 864; the upscale doubles it and returns one image. 5 + 12 credits.
    "grok_text_to_image_upscale": Expected(2, 17, {"3": (1, 1728, 2592, 3)}, "3:2"),
}


@pytest.fixture
def comfy_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """ComfyUI's ``folder_paths``, faked: the journal under user/, kept files under output/."""
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_user_directory = lambda: str(tmp_path / "user")
    folder_paths.get_output_directory = lambda: str(tmp_path / "output")
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.delenv("GROK_IMAGINE_KEY_FILE", raising=False)
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "not-used-inside-comfyui"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    yield tmp_path
    execution.close_journals()


@pytest.fixture
def grok(comfy_folders, sandbox_factory, monkeypatch: pytest.MonkeyPatch):
    sb = sandbox_factory(images_per_task=IMAGES_PER_TASK)
    monkeypatch.setenv("APIINONE_API_KEY", TEST_KEY)
    monkeypatch.setenv("APIINONE_BASE_URL", sb.base_url)
    return sb


def assert_images(images: Any, shape: tuple[int, ...]) -> None:
    assert isinstance(images, torch.Tensor) and images.dtype == torch.float32
    assert tuple(images.shape) == shape
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_queued_prompt_runs_unchanged(name, grok, comfy_folders):
    prompt, expected = api_prompt(name), EXPECTED[name]
    outputs = asyncio.run(run_prompt(prompt))

    ledger = grok.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (expected.creates, expected.credits)
    shown = images_shown(prompt, outputs)
    assert set(shown) == set(expected.shapes)
    for node_id, shape in expected.shapes.items():
        assert_images(shown[node_id], shape)
    (t2i_id,) = [i for i, n in prompt.items() if n["class_type"] == "GrokImagineTextToImage"]
    task = grok.task_info(outputs[t2i_id][1])
    assert task.prompt == prompt[t2i_id]["inputs"]["prompt"]
    assert task.aspect_ratio == expected.aspect_ratio
    for node_id, node in prompt.items():
        if node["class_type"] == "GrokImagineUpscale":
            assert grok.task_info(outputs[node_id][1]).source_task_id == task.task_id
    assert (comfy_folders / "user" / "grok_imagine" / "journal.sqlite").is_file()
    assert (comfy_folders / "output" / "grok_imagine" / task.task_id).is_dir()

    again = asyncio.run(run_prompt(prompt))  # queued again: the journal answers, nothing is paid
    assert grok.ledger(TEST_KEY).creates == expected.creates
    for node_id, images in images_shown(prompt, again).items():
        assert torch.equal(images, shown[node_id])


def test_the_load_task_template_refuses_its_placeholder_and_loads_a_pasted_id(grok):
    prompt = api_prompt("grok_load_task_preview")
    with pytest.raises(RuntimeError) as refused:  # unchanged: the empty id, said in one line
        asyncio.run(run_prompt(prompt))
    assert "task id" in str(refused.value) and "\n" not in str(refused.value)
    assert grok.ledger(TEST_KEY).creates == 0

    paid = asyncio.run(run_prompt(api_prompt("grok_text_to_image")))
    task_id = paid["1"][1]
    prompt["1"]["inputs"]["task_id"] = task_id  # what the template asks the user to do
    outputs = asyncio.run(run_prompt(prompt))
    assert (grok.ledger(TEST_KEY).creates, grok.ledger(TEST_KEY).credits_charged) == (1, 5)
    (images,) = images_shown(prompt, outputs).values()
    assert_images(images, (IMAGES_PER_TASK, 1024, 1024, 3))
    assert torch.equal(images, paid["1"][0])
    assert outputs["1"][1] == task_id
