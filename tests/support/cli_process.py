"""The real `grok-imagine` command in a subprocess (``python -m comfyui_grok_imagine``), with the
sandbox's key and address, a home folder of its own, and helpers to stop it and read it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.keys import TEST_KEY

STOP_PROMISE_S = 1.0
STOP_SLACK_S = 4.0  # the assertion's bound: a busy 2-core machine, not the promise
WAIT_LIMIT_S = 30.0


class Cli:
    """Runs `python -m comfyui_grok_imagine ...` with the sandbox's key, URL and a home folder."""

    def __init__(self, sandbox: Any, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.cwd = tmp_path
        self.home = tmp_path / "home"
        self.env = {
            **os.environ,
            "APIINONE_API_KEY": TEST_KEY,
            "APIINONE_BASE_URL": sandbox.base_url,
            "GROK_IMAGINE_HOME": str(self.home),
            "GROK_IMAGINE_KEY_FILE": str(tmp_path / "config" / "api_key"),
            "GROK_IMAGINE_POLL_SCALE": "0.05",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.env.pop("GROK_IMAGINE_DAILY_CREDIT_LIMIT", None)
        self.env.pop("GROK_IMAGINE_JOURNAL_URL", None)

    def start(self, *argv: str, **popen: Any) -> subprocess.Popen[str]:
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            [sys.executable, "-m", "comfyui_grok_imagine", *argv],
            cwd=self.cwd,
            env=self.env,
            text=True,
            **popen,
        )

    def run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "comfyui_grok_imagine", *argv],
            cwd=self.cwd,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=timeout,
        )

    def ledger(self) -> tuple[int, int]:
        ledger = self.sandbox.ledger(TEST_KEY)
        return ledger.creates, ledger.credits_charged


class LineReader:
    """Collects a running process's stderr lines on a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        wait_until(lambda: any(predicate(line) for line in self.lines), what)
        return next(line for line in self.lines if predicate(line))

    def rest(self) -> str:
        """Every line, once the process has ended."""
        self._thread.join(WAIT_LIMIT_S)
        return "\n".join(self.lines) + "\n"


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def stop_and_time(
    proc: subprocess.Popen[str], sig: int, what: str, reader: LineReader | None = None
) -> tuple[float, str, str]:
    """Send ``sig``; return (seconds until the process was gone, stdout, stderr)."""
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        if reader is None:
            out, err = proc.communicate(timeout=WAIT_LIMIT_S)
        else:
            proc.wait(timeout=WAIT_LIMIT_S)
            out, err = (proc.stdout.read() if proc.stdout else ""), reader.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
    latency = time.monotonic() - sent
    print(
        f"\n{what}: stopped {latency:.3f} s after {signal.Signals(sig).name} "
        f"(promise {STOP_PROMISE_S:g} s, load average {os.getloadavg()[0]:.2f})"
    )
    assert latency < STOP_SLACK_S, f"{what}: {latency:.2f} s to stop\n{err}"
    assert "Traceback" not in err, err
    return latency, out, err


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]
