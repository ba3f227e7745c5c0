"""``locales/en/nodeDefs.json`` made from the node classes, so the English catalog translators
work from is exactly what the nodes declare (``tests/test_locales.py`` fails when they drift).

After changing a node's name, description or tooltips: ``python tests/locale_catalog.py``
rewrites the English file; then update the other languages' entries it changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PACK_DIR = Path(__file__).resolve().parents[1]
LOCALES_DIR = PACK_DIR / "locales"
ENGLISH_NODE_DEFS = LOCALES_DIR / "en" / "nodeDefs.json"


def node_defs(node_classes: dict[str, type]) -> dict[str, Any]:
    """The frontend's ``nodeDefs`` shape: display name, description, inputs and outputs."""
    catalog: dict[str, Any] = {}
    for node_id, node in sorted(node_classes.items()):
        spec = node.INPUT_TYPES()
        inputs = {**spec.get("required", {}), **spec.get("optional", {})}
        catalog[node_id] = {
            "display_name": node.DISPLAY_NAME,
            "description": node.DESCRIPTION,
            "inputs": {
                name: {"name": name, "tooltip": options[1]["tooltip"]}
                for name, options in inputs.items()
            },
            "outputs": {
                str(index): {"name": name, "tooltip": tooltip}
                for index, (name, tooltip) in enumerate(
                    zip(node.RETURN_NAMES, node.OUTPUT_TOOLTIPS, strict=True)
                )
            },
        }
    return catalog


def dumps(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, ensure_ascii=False, indent=2) + "\n"


def main() -> None:
    sys.path.insert(0, str(PACK_DIR / "tests"))
    from support import pack

    ENGLISH_NODE_DEFS.write_text(dumps(node_defs(pack.NODE_CLASS_MAPPINGS)), encoding="utf-8")
    print(f"wrote {ENGLISH_NODE_DEFS.relative_to(PACK_DIR)}")


if __name__ == "__main__":
    main()
