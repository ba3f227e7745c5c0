"""The `grok-imagine` command line (also `python -m comfyui_grok_imagine`).

It drives the same journal-backed runner as the ComfyUI nodes and tells the same story: the
seed is the re-run switch (default 0), so running the same command again resumes or reuses the
task already paid for, and only ``--new`` or another ``--seed`` pays for new images. Ctrl-C and
SIGTERM stop any command within a second and print the command that picks the work up again.
Every line it prints is worded for the command line (``api.advice``, ``Surface.CLI``).

ComfyUI never imports this package. Its modules, one job each:
``parser`` (commands, options, usage errors), ``main`` (how a command ends), ``commands`` (the
paid ones), ``journal_view`` (``tasks``), ``service_commands`` (``sandbox``, ``key``),
``tasks_run`` (tasks side by side, the interrupt message), ``progress`` / ``tracks`` /
``terminal`` (what is shown while tasks run), ``context``, ``outputs``, ``stop``, ``logs``,
``exit_codes``.
"""

from .exit_codes import (
    EXIT_API,
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from .main import main
from .parser import build_parser

__all__ = [
    "EXIT_API",
    "EXIT_CODES",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PIPE",
    "EXIT_REFUSED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "build_parser",
    "main",
]
