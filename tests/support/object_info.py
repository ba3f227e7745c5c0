"""``/object_info`` built from node classes the way ComfyUI's server builds it, without ComfyUI.

Mirrors ``node_info`` in ComfyUI 0.3.x ``server.py`` for classic (V1) nodes: ``input`` is
``INPUT_TYPES()``, ``input_order`` lists each section's keys in declaration order, the outputs come
from ``RETURN_TYPES`` / ``RETURN_NAMES``. The result goes through JSON, as the HTTP answer does, so
tuples become lists. The e2e suite checks that it equals what a real ComfyUI serves for the pack.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import pack

PACK_MODULE = "custom_nodes.ComfyUI-Grok-Imagine"
"""``python_module`` ComfyUI reports for a pack cloned under its usual folder name."""
SAVED_WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "saved_workflows"
CORE_OBJECT_INFO = SAVED_WORKFLOWS_DIR / "comfyui_core_object_info.json"
"""ComfyUI's own nodes the example workflows use (SaveImage, PreviewImage), as 0.3.64 serves
them: ComfyUI's ``nodes.py`` cannot be imported without ComfyUI."""


def node_info(name: str, node_class: type, display_name: str | None = None) -> dict[str, Any]:
    """One class's ``/object_info`` entry, field for field as ComfyUI's server makes it."""
    returns = node_class.RETURN_TYPES
    info: dict[str, Any] = {
        "input": node_class.INPUT_TYPES(),
        "input_order": {key: list(value) for key, value in node_class.INPUT_TYPES().items()},
        "output": returns,
        "output_is_list": getattr(node_class, "OUTPUT_IS_LIST", [False] * len(returns)),
        "output_name": getattr(node_class, "RETURN_NAMES", returns),
        "name": name,
        "display_name": display_name or name,
        "description": getattr(node_class, "DESCRIPTION", ""),
        "python_module": getattr(node_class, "RELATIVE_PYTHON_MODULE", PACK_MODULE),
        "category": getattr(node_class, "CATEGORY", "sd"),
        "output_node": getattr(node_class, "OUTPUT_NODE", False) is True,
    }
    if hasattr(node_class, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = node_class.OUTPUT_TOOLTIPS
    if getattr(node_class, "DEPRECATED", False):
        info["deprecated"] = True
    if getattr(node_class, "EXPERIMENTAL", False):
        info["experimental"] = True
    if hasattr(node_class, "API_NODE"):
        info["api_node"] = node_class.API_NODE
    # The server's key order differs; JSON objects compare by content.
    return json.loads(json.dumps(info))


def pack_object_info() -> dict[str, Any]:
    """The pack's nodes as ComfyUI would list them, from the current declarations."""
    names: Mapping[str, str] = pack.NODE_DISPLAY_NAME_MAPPINGS
    return {
        name: node_info(name, node_class, names.get(name))
        for name, node_class in pack.NODE_CLASS_MAPPINGS.items()
    }


def object_info() -> dict[str, Any]:
    """The pack's current nodes plus the frozen ComfyUI core nodes the workflows use."""
    core = json.loads(CORE_OBJECT_INFO.read_text(encoding="utf-8"))
    return {**core, **pack_object_info()}
