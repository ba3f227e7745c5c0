"""Load the pack the way ComfyUI loads it, so the benchmarks time the code users run.

ComfyUI imports a custom-node folder from its ``__init__.py`` under a module name made from the
folder path; the bench uses a hyphenated name too, so nothing here can lean on an absolute import
the real loader would not have.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from pack_loader import load_pack_at, submodule_of

PACK_DIR = Path(os.environ.get("GROK_BENCH_PACK_DIR") or Path(__file__).resolve().parents[1])
"""The checkout under test; ``GROK_BENCH_PACK_DIR`` points the bench at another one."""
PACK_NAME = "ComfyUI-Grok-Imagine-bench"


def load_pack() -> ModuleType:
    return load_pack_at(PACK_DIR, PACK_NAME)


def submodule(name: str) -> ModuleType:
    """``submodule("api.polling")`` -> that module of the pack, loaded ComfyUI's way."""
    return submodule_of(load_pack(), name)
