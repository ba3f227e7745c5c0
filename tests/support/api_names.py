"""The ``api`` package's public names in one namespace, for tests and benchmarks.

``api/__init__.py`` re-exports nothing (so loading the pack never imports the HTTP stack); tests
that want ``api.GrokClient`` and friends get them here, from the modules that define them.
"""

from __future__ import annotations

from types import SimpleNamespace

from . import submodule


def public_api() -> SimpleNamespace:
    modules = {
        name: submodule(f"api.{name}")
        for name in (
            "client", "config", "download", "errors", "models", "polling", "task", "task_reader",
            "transport", "validation",
        )
    }  # fmt: skip
    return SimpleNamespace(
        **modules,
        GrokClient=modules["client"].GrokClient,
        Settings=modules["config"].Settings,
        load_settings=modules["config"].load_settings,
        Task=modules["task"].Task,
        TaskState=modules["task"].TaskState,
        PollSchedule=modules["polling"].PollSchedule,
        wait_for_task=modules["polling"].wait_for_task,
        Downloaded=modules["download"].Downloaded,
        parse_task=modules["task_reader"].parse_task,
    )
