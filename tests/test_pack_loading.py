"""The pack loads the way ComfyUI loads it: from the folder, fast, with no side effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from support import PACK_DIR, pack


def test_exports_comfyui_entry_points():
    assert isinstance(pack.NODE_CLASS_MAPPINGS, dict)
    assert isinstance(pack.NODE_DISPLAY_NAME_MAPPINGS, dict)
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) <= set(pack.NODE_CLASS_MAPPINGS)
    assert (PACK_DIR / pack.WEB_DIRECTORY).is_dir()


def test_import_is_side_effect_free_in_a_fresh_process():
    """No threads, no sockets, none of the heavy libraries pulled in at import time."""
    script = textwrap.dedent(
        f"""
        import importlib.util, json, socket, sys, threading
        opened = []
        real_socket = socket.socket
        class Spy(real_socket):
            def __init__(self, *a, **k):
                opened.append(a)
                super().__init__(*a, **k)
        socket.socket = Spy
        path = {str(PACK_DIR)!r}
        spec = importlib.util.spec_from_file_location(
            path.replace(".", "_x_"), path + "/__init__.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        heavy = [m for m in ("torch", "requests", "PIL", "numpy", "sqlite3") if m in sys.modules]
        print(json.dumps({{"threads": threading.active_count(), "sockets": len(opened),
                          "heavy": heavy, "nodes": sorted(mod.NODE_CLASS_MAPPINGS)}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["threads"] == 1
    assert report["sockets"] == 0
    assert report["heavy"] == []
