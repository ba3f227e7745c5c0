"""Load the pack exactly the way ComfyUI does and hand its modules to the tests.

ComfyUI imports a custom-node folder from its ``__init__.py`` under a module name derived from the
folder path, hyphens and all. Loading it the same way here means a stray absolute import (which
would work under ``comfyui_grok_imagine`` but not in ComfyUI) fails in the tests too.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACK_DIR = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-Grok-Imagine-under-test"


def load_pack() -> ModuleType:
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, PACK_DIR / "__init__.py", submodule_search_locations=[str(PACK_DIR)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[PACK_NAME]
        raise
    return module


def submodule(name: str) -> ModuleType:
    """``submodule("api.errors")`` -> that module of the pack loaded ComfyUI's way."""
    load_pack()
    return importlib.import_module(f"{PACK_NAME}.{name}")


pack = load_pack()
