"""UI-format workflows (what the canvas saves and ``example_workflows/`` holds) -> API format
(what ``POST /prompt`` takes), the way the frontend converts them.

Each node's ``widgets_values`` are matched, in order, against the node's widget inputs as
``/object_info`` declares them (``input_order``: required, then optional). An INT widget with
``control_after_generate`` carries one extra value in ``widgets_values`` (``fixed``,
``randomize``, ...) that the server never sees; it is skipped. A linked input becomes
``[source node id, output slot]``, also when the input is a converted widget.

Enough for the pack's example workflows and any graph of ordinary nodes: notes are dropped, muted
and bypassed nodes, reroutes, primitive nodes, groups and subgraphs are not supported and refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
SEED_NAMES = frozenset({"seed", "noise_seed"})  # the frontend adds the control to these always
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote"})
MODE_ALWAYS = 0


class UnsupportedWorkflow(ValueError):
    """The workflow uses a frontend feature this converter does not reproduce."""


def to_api_prompt(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """``{node id: {"class_type": ..., "inputs": {...}}}`` for ``POST /prompt``."""
    links = dict(_links(workflow))
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        class_type = node["type"]
        if class_type in FRONTEND_ONLY:
            continue
        if node.get("mode", MODE_ALWAYS) != MODE_ALWAYS:
            raise UnsupportedWorkflow(f"node {node['id']} ({class_type}) is muted or bypassed")
        if class_type not in object_info:
            raise UnsupportedWorkflow(f"node {node['id']}: {class_type} is not a server node")
        prompt[str(node["id"])] = {
            "class_type": class_type,
            "inputs": _node_inputs(node, object_info[class_type], links),
            "_meta": {"title": node.get("title") or object_info[class_type]["display_name"]},
        }
    return prompt


def _links(workflow: Mapping[str, Any]) -> Iterator[tuple[int, list[Any]]]:
    """link id -> [source node id, source slot]; both the array and the object link format."""
    for link in workflow.get("links", []):
        if isinstance(link, Mapping):
            yield int(link["id"]), [str(link["origin_id"]), int(link["origin_slot"])]
        else:
            link_id, origin_id, origin_slot = link[0], link[1], link[2]
            yield int(link_id), [str(origin_id), int(origin_slot)]


def _node_inputs(
    node: Mapping[str, Any], info: Mapping[str, Any], links: Mapping[int, list[Any]]
) -> dict[str, Any]:
    linked = {
        slot["name"]: links[slot["link"]]
        for slot in node.get("inputs", [])
        if slot.get("link") is not None
    }
    values = node.get("widgets_values") or []
    inputs: dict[str, Any] = {}
    if isinstance(values, Mapping):  # some nodes save their widgets by name
        inputs.update({name: value for name, value in values.items() if name in _declared(info)})
    else:
        inputs.update(_positional_widgets(node, info, list(values)))
    inputs.update(linked)
    return inputs


def _declared(info: Mapping[str, Any]) -> dict[str, Any]:
    """Every input name -> its spec, in ``input_order`` (required first)."""
    declared: dict[str, Any] = {}
    order = info.get("input_order") or {}
    for section in ("required", "optional"):
        specs = info.get("input", {}).get(section, {}) or {}
        for name in order.get(section, list(specs)):
            declared[name] = specs[name]
    return declared


def _is_widget(spec: Any) -> bool:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(kind, list):  # a combo's options
        return True
    options = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
    if isinstance(options, Mapping) and options.get("forceInput"):
        return False
    return kind in WIDGET_TYPES


def _has_control(name: str, spec: Any) -> bool:
    options = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
    if not isinstance(options, Mapping):
        options = {}
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if "control_after_generate" in options:
        return bool(options["control_after_generate"])
    return kind == "INT" and name in SEED_NAMES


def _positional_widgets(
    node: Mapping[str, Any], info: Mapping[str, Any], values: list[Any]
) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    position = 0
    for name, spec in _declared(info).items():
        if not _is_widget(spec) or position >= len(values):
            continue
        inputs[name] = values[position]
        position += 1
        if (
            _has_control(name, spec)
            and position < len(values)
            and values[position] in CONTROL_VALUES
        ):
            position += 1
    if position < len(values):
        extra = values[position:]
        raise UnsupportedWorkflow(
            f"node {node['id']} ({node['type']}) has widget values nothing declares: {extra}"
        )
    return inputs
