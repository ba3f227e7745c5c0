"""Load the pack the way ComfyUI loads it, so the benchmarks time the code users run.

ComfyUI imports a custom-node folder from its ``__init__.py`` under a module name made from the
folder path; the bench uses a hyphenated name too, so nothing here can lean on an absolute import
the real loader would not have.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PACK_DIR = Path(os.environ.get("GROK_BENCH_PACK_DIR") or Path(__file__).resolve().parents[1])
"""The checkout under test; ``GROK_BENCH_PACK_DIR`` points the bench at another one."""
PACK_NAME = "ComfyUI-Grok-Imagine-bench"


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
    """``submodule("api.polling")`` -> that module of the pack, loaded ComfyUI's way."""
    load_pack()
    return importlib.import_module(f"{PACK_NAME}.{name}")
