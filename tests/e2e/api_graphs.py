"""Small API-format graphs for the server-side checks, built from ``/object_info`` so they follow
whatever inputs the nodes declare (only the ones a test cares about are named here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TEXT_TO_IMAGE = "GrokImagineTextToImage"
UPSCALE = "GrokImagineUpscale"
LOAD_TASK = "GrokImagineLoadTask"
GROK_NODES = (TEXT_TO_IMAGE, UPSCALE, LOAD_TASK)


def defaults(object_info: Mapping[str, Any], class_type: str) -> dict[str, Any]:
    """The required widget inputs of a node at their declared defaults (first combo entry)."""
    inputs: dict[str, Any] = {}
    for name, spec in object_info[class_type]["input"].get("required", {}).items():
        kind = spec[0]
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
        if isinstance(kind, list):
            inputs[name] = kind[0] if kind else None
        elif kind == "COMBO":
            inputs[name] = options.get("default", (options.get("options") or [None])[0])
        elif "default" in options:
            inputs[name] = options["default"]
        elif kind == "STRING":
            inputs[name] = ""
    return inputs


def output_slot(object_info: Mapping[str, Any], class_type: str, wanted: str) -> int:
    """Index of the first output whose name contains ``wanted`` (``images``, ``task``)."""
    names = object_info[class_type].get("output_name") or object_info[class_type]["output"]
    for index, name in enumerate(names):
        if wanted.lower() in str(name).lower():
            return index
    raise AssertionError(f"{class_type} has no output like {wanted!r}: {names}")


class Graph:
    """An API-format prompt under construction: ``add`` returns the new node's id."""

    def __init__(self, object_info: Mapping[str, Any]) -> None:
        self.object_info = object_info
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {
            "class_type": class_type,
            "inputs": {**defaults(self.object_info, class_type), **inputs},
        }
        return node_id

    def text_to_image(self, prompt: str, seed: int = 0, **inputs: Any) -> str:
        return self.add(TEXT_TO_IMAGE, prompt=prompt, seed=seed, **inputs)

    def out(self, node_id: str, wanted: str = "images") -> list[Any]:
        """A link to ``node_id``'s output named like ``wanted``."""
        class_type = self.nodes[node_id]["class_type"]
        return [node_id, output_slot(self.object_info, class_type, wanted)]

    def save(self, source: str, prefix: str) -> str:
        return self.add("SaveImage", images=self.out(source), filename_prefix=prefix)

    def preview(self, source: str) -> str:
        return self.add("PreviewImage", images=self.out(source))
