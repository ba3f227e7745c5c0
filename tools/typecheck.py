"""Type-check the pack as the package it is: ``python tools/typecheck.py [mypy options]``.

mypy names a folder that holds an ``__init__.py`` after the folder, and a clone may have any
folder name (``ComfyUI-Grok-Imagine`` is not a valid module name), so the check runs on a link
named like the pack's import name in a temporary folder. Settings: ``[tool.mypy]`` in
``pyproject.toml`` (the pack only; tests, bench and tools are left out).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_NAME = "comfyui_grok_imagine"


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="grok-typecheck-") as folder:
        (Path(folder) / IMPORT_NAME).symlink_to(ROOT, target_is_directory=True)
        command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
        env = {**os.environ, "MYPYPATH": folder}
        return subprocess.call([*command, "-p", IMPORT_NAME, *argv], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
