"""A real ComfyUI in a subprocess, with the pack linked into a throwaway base directory.

ComfyUI's ``--base-directory`` moves ``custom_nodes/``, ``input/``, ``output/``, ``temp/`` and
``user/`` into a temporary folder and ``--database-url`` moves its SQLite file there too, so a run
never writes into the ComfyUI checkout or this repository (only ``__pycache__``). The pack is a
symlink in that folder's ``custom_nodes/``, under the name a user's clone would have.

The HTTP helpers use the standard library only: the e2e suite needs nothing beyond what the unit
tests need, plus ComfyUI itself (and Playwright for the browser checks).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import PACK_DIR

PACK_FOLDER_NAME = "ComfyUI-Grok-Imagine"
STARTUP_TIMEOUT_S = 240.0  # a cold start on a busy 2-core machine imports torch from scratch
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0

# Variables of the outer environment that would steer the pack away from this test's sandbox
# and folders; the harness sets what it needs explicitly.
_PACK_ENV_PREFIXES = ("APIINONE_", "GROK_IMAGINE_")


FRONTEND_VERSION_SCRIPT = (
    "from importlib.metadata import version; print(version('comfyui-frontend-package'))"
)


class ComfyUIError(AssertionError):
    """ComfyUI did not start, died, or answered something a test did not expect."""


@dataclass(frozen=True)
class ComfyUIInstall:
    """A ComfyUI checkout and the Python that has its requirements."""

    directory: Path
    python: str

    @property
    def version(self) -> str:
        """``comfyui_version.py``'s ``__version__`` (``unknown`` for very old checkouts)."""
        version_file = self.directory / "comfyui_version.py"
        if not version_file.is_file():
            return "unknown"
        found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", version_file.read_text(), re.M)
        return found.group(1) if found else "unknown"

    @property
    def frontend_version(self) -> tuple[int, ...]:
        """The ``comfyui-frontend-package`` ComfyUI's Python has installed (what it serves)."""
        done = subprocess.run(
            [self.python, "-c", FRONTEND_VERSION_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.directory,
        )
        found = re.match(r"(\d+)\.(\d+)\.(\d+)", done.stdout.strip())
        if done.returncode != 0 or not found:
            raise ComfyUIError(
                f"no comfyui-frontend-package in {self.python}: {done.stderr[-800:]}"
            )
        return tuple(int(part) for part in found.groups())


def find_install(environ: Mapping[str, str] = os.environ) -> ComfyUIInstall | None:
    """The checkout named by ``COMFYUI_DIR``, or None when the variable is unset.

    ComfyUI's interpreter is ``COMFYUI_PYTHON`` when set; else a virtual environment inside the
    checkout (``venv``, ``.venv``) or next to it (``../comfy-venv``), the layouts ComfyUI's own
    instructions produce; else the interpreter running the tests.
    """
    configured = environ.get("COMFYUI_DIR")
    if not configured:
        return None
    directory = Path(configured).expanduser().resolve()
    if not (directory / "main.py").is_file():
        raise ComfyUIError(f"COMFYUI_DIR={configured} is not a ComfyUI checkout (no main.py)")
    if environ.get("COMFYUI_PYTHON"):
        return ComfyUIInstall(directory, environ["COMFYUI_PYTHON"])
    for venv in (directory / "venv", directory / ".venv", directory.parent / "comfy-venv"):
        candidate = venv / "bin" / "python"
        if candidate.is_file():
            return ComfyUIInstall(directory, str(candidate))
    return ComfyUIInstall(directory, sys.executable)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class QueueAnswer:
    """``POST /prompt``'s answer: 200 with a prompt id, or 400 with the node errors."""

    status: int
    body: dict[str, Any]

    @property
    def prompt_id(self) -> str:
        if self.status != 200:
            raise ComfyUIError(f"the prompt was refused ({self.status}): {self.body}")
        return str(self.body["prompt_id"])

    @property
    def node_errors(self) -> dict[str, Any]:
        return dict(self.body.get("node_errors") or {})


class ComfyUIServer:
    """One ComfyUI process on 127.0.0.1; ``restart()`` keeps the same base directory."""

    def __init__(
        self,
        install: ComfyUIInstall,
        base_dir: Path,
        env: Mapping[str, str],
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.install = install
        self.base_dir = base_dir
        self.extra_args = extra_args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_PACK_ENV_PREFIXES)}
        self.env.update(env)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.startup_seconds: list[float] = []
        (base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
        link = base_dir / "custom_nodes" / PACK_FOLDER_NAME
        if not link.exists():
            link.symlink_to(PACK_DIR, target_is_directory=True)

    # -- folders ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def user_dir(self) -> Path:
        return self.base_dir / "user"

    def log_path(self, start: int | None = None) -> Path:
        """The combined stdout/stderr of one start (the latest by default)."""
        number = self.starts if start is None else start
        return self.base_dir / f"comfyui-{number}.log"

    def log_text(self, start: int | None = None) -> str:
        path = self.log_path(start)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def all_logs(self) -> str:
        return "\n".join(self.log_text(n) for n in range(1, self.starts + 1))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ComfyUIServer:
        if self.process is not None and self.process.poll() is None:
            raise ComfyUIError("this ComfyUI is already running")
        self.starts += 1
        self.port = free_port()
        command = [
            self.install.python,
            "main.py",
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base_dir),
            "--database-url",
            f"sqlite:///{self.base_dir / 'comfyui.db'}",
            "--disable-auto-launch",
            *self.extra_args,
        ]
        began = time.monotonic()
        with open(self.log_path(), "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.install.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in pytest reaches pytest, not ComfyUI
            )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds.append(time.monotonic() - began)
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ComfyUIError(
                    f"ComfyUI exited during startup (code {self.process.returncode}); is "
                    f"{self.install.python} the Python with ComfyUI's requirements? Set "
                    f"COMFYUI_PYTHON.\n{self.log_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/system_stats", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ComfyUIError(
            f"ComfyUI did not serve in {STARTUP_TIMEOUT_S:.0f} s:\n{self.log_text()[-4000:]}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers. Safe to repeat."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """SIGKILL, as a crash or ``kill -9`` would end it: no cleanup code runs."""
        process, self.process = self.process, None
        if process is None:
            return
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> ComfyUIServer:
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, parsed JSON or text); HTTP errors are answers here, not exceptions."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return status, text

    def get_json(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise ComfyUIError(f"GET {path} answered {status}: {body}")
        return body

    def object_info(self) -> dict[str, Any]:
        return self.get_json("/api/object_info")

    def queue(
        self, prompt: Mapping[str, Any], extra_data: Mapping[str, Any] | None = None
    ) -> QueueAnswer:
        body: dict[str, Any] = {"prompt": prompt, "client_id": "grok-imagine-e2e"}
        if extra_data is not None:
            body["extra_data"] = extra_data
        status, answer = self.request("POST", "/api/prompt", body)
        return QueueAnswer(status, answer if isinstance(answer, dict) else {"raw": answer})

    def interrupt(self) -> None:
        status, body = self.request("POST", "/api/interrupt", {})
        if status != 200:
            raise ComfyUIError(f"POST /interrupt answered {status}: {body}")

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The finished prompt's history entry, or None while it is queued or running."""
        entry = self.get_json(f"/api/history/{prompt_id}")
        return entry.get(prompt_id) if isinstance(entry, dict) else None

    def wait_for_history(self, prompt_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait (bounded, generously) until ComfyUI has finished the prompt, however it ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                return entry
            if not self.running:
                raise ComfyUIError(
                    f"ComfyUI died while running {prompt_id}:\n{self.log_text()[-4000:]}"
                )
            time.sleep(0.1)
        raise ComfyUIError(
            f"prompt {prompt_id} did not finish in {timeout:.0f} s:\n{self.log_text()[-3000:]}"
        )

    def run(
        self,
        prompt: Mapping[str, Any],
        extra_data: Mapping[str, Any] | None = None,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Queue and wait; the history entry of a prompt that must succeed."""
        entry = self.wait_for_history(self.queue(prompt, extra_data).prompt_id, timeout)
        if entry["status"].get("status_str") != "success":
            raise ComfyUIError(
                f"the prompt did not succeed: {status_messages(entry)}\n{self.log_text()[-3000:]}"
            )
        return entry

    def saved_images(self, entry: Mapping[str, Any]) -> list[Path]:
        """Files of every "output"-type image in a history entry, in node then image order."""
        paths = []
        for node_output in entry.get("outputs", {}).values():
            for image in node_output.get("images", []):
                if image.get("type") == "output":
                    paths.append(self.output_dir / image.get("subfolder", "") / image["filename"])
        return paths


def status_messages(entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A history entry's status messages by event name (``execution_interrupted``, ...)."""
    return {name: data for name, data in entry.get("status", {}).get("messages", [])}
