"""Load a pack folder exactly the way ComfyUI does: from its ``__init__.py``, under a module name
of our choosing (hyphens included), so a stray absolute import fails here as it would there.

Shared by the tests (``tests/support``) and the benchmarks (``bench/pack.py``), which import
nothing from each other; no side effects.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_pack_at(pack_dir: Path, name: str) -> ModuleType:
    """The pack in ``pack_dir`` as module ``name`` (loaded once per process)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, pack_dir / "__init__.py", submodule_search_locations=[str(pack_dir)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def submodule_of(pack: ModuleType, name: str) -> ModuleType:
    """``submodule_of(pack, "api.errors")`` -> that module of the loaded pack."""
    return importlib.import_module(f"{pack.__name__}.{name}")
