"""Load the pack exactly the way ComfyUI does and hand its modules to the tests.

ComfyUI imports a custom-node folder from its ``__init__.py`` under a module name derived from the
folder path, hyphens and all. Loading it the same way here means a stray absolute import (which
would work under ``comfyui_grok_imagine`` but not in ComfyUI) fails in the tests too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

PACK_DIR = Path(__file__).resolve().parents[2]
if str(PACK_DIR / "tools") not in sys.path:  # scripts the tests start put only tests/ on the path
    sys.path.insert(0, str(PACK_DIR / "tools"))

from pack_loader import load_pack_at, submodule_of  # noqa: E402

PACK_NAME = "ComfyUI-Grok-Imagine-under-test"


def load_pack() -> ModuleType:
    return load_pack_at(PACK_DIR, PACK_NAME)


def submodule(name: str) -> ModuleType:
    """``submodule("api.errors")`` -> that module of the pack loaded ComfyUI's way."""
    return submodule_of(load_pack(), name)


pack = load_pack()
