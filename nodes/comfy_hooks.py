"""What a running node tells ComfyUI (its status, its progress bar), and how it hears Cancel: all
no-ops outside ComfyUI.

ComfyUI's modules (``server``, ``comfy.utils``, ``comfy.model_management``) are looked up only
when ComfyUI has loaded them (``folder_paths`` in ``sys.modules``), never imported otherwise, so
the nodes run unchanged in tests and scripts.

Cancel: ComfyUI's Cancel button sets a global "interrupt" flag. ``NodeHooks.cancelled()`` reads
it (and latches it for this node: ComfyUI's progress-bar hook clears the flag when it raises, and
several tasks of one node must all stop). The node then raises ComfyUI's own
``InterruptProcessingException`` (``interrupt_exception()``), which ComfyUI reports as an
interrupt rather than an error. Tests flip the same switch from another thread with
``set_test_interrupt(True)``.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

logger = logging.getLogger(__name__)

_test_interrupt = threading.Event()
_NO_MARKUP = str.maketrans({"<": "\u2039", ">": "\u203a"})
STATUS_EVENT = "grok_imagine_status"
"""The websocket message a node's status travels in (the frontend listens for it by name)."""


class Interrupted(Exception):
    """Raised for Cancel when ComfyUI (and its InterruptProcessingException) is not loaded."""


def set_test_interrupt(value: bool = True) -> None:
    """Test seam: act as if ComfyUI's Cancel button were pressed (or released)."""
    if value:
        _test_interrupt.set()
    else:
        _test_interrupt.clear()


def processing_interrupted() -> bool:
    """True once the user pressed Cancel in ComfyUI (or a test said so)."""
    if _test_interrupt.is_set():
        return True
    management = _comfy_module("comfy.model_management")
    if management is None:
        return False
    try:
        return bool(management.processing_interrupted())
    except Exception:  # an older or newer ComfyUI without it: no Cancel, not a crash
        return False


def interrupt_exception() -> BaseException:
    """The exception that makes ComfyUI show "interrupted" instead of an error dialog."""
    management = _comfy_module("comfy.model_management")
    exception_type = getattr(management, "InterruptProcessingException", None)
    if isinstance(exception_type, type) and issubclass(exception_type, BaseException):
        return exception_type()
    return Interrupted("cancelled")


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is ComfyUI's interrupt (or our stand-in for it)."""
    if isinstance(exc, Interrupted):
        return True
    management = _comfy_module("comfy.model_management")
    exception_type = getattr(management, "InterruptProcessingException", None)
    return isinstance(exception_type, type) and isinstance(exc, exception_type)


class NodeHooks:
    """Progress text, progress bar and Cancel for one execution of one node.

    Thread-safe: the node's tasks report from worker threads. Anything ComfyUI's side raises
    while reporting is logged and dropped (an interrupt is remembered as Cancel): status display
    must never fail a paid request.
    """

    def __init__(self, node_id: str | None, total: int = 100) -> None:
        self.node_id = None if node_id is None else str(node_id)
        self.total = max(1, int(total))
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._bar_made = False

    # -- Cancel --------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop this node's waits (the event loop cancelled the node, or Cancel was seen)."""
        self._cancel.set()

    def cancelled(self) -> bool:
        if self._cancel.is_set():
            return True
        if processing_interrupted():
            self._cancel.set()
            return True
        return False

    # -- what the user sees --------------------------------------------------------------------

    def status(self, status: dict[str, Any]) -> None:
        """Send the node's status (``status_board``'s structure) to the frontend, which words it
        and keeps it on the node (``web/js/grok_imagine_status.js``).

        Parts of it come from the server (failure reasons, paths): angle brackets are swapped for
        look-alikes, so no frontend or extension that puts it into a page can make markup of it.
        """
        if self.node_id is None:
            return
        server = _comfy_module("server")
        instance = getattr(getattr(server, "PromptServer", None), "instance", None)
        if instance is None:
            return
        try:
            instance.send_sync(STATUS_EVENT, _no_markup({**status, "node": self.node_id}))
        except Exception:
            logger.debug("status not delivered", exc_info=True)

    def progress(self, value: float) -> None:
        """Move the node's progress bar to ``value`` of ``total``."""
        bar = self._progress_bar()
        if bar is None:
            return
        value = int(min(max(value, 0), self.total))
        try:
            with self._lock:
                bar.update_absolute(value, self.total)
        except Exception as exc:
            # ComfyUI's hook raises its interrupt from inside update (and clears the flag).
            if is_interrupt(exc):
                self._cancel.set()
                _raise_interrupt_flag_again()
            else:
                logger.debug("progress bar not updated", exc_info=True)

    def _progress_bar(self) -> Any:
        with self._lock:
            if not self._bar_made:
                self._bar_made = True
                utils = _comfy_module("comfy.utils")
                progress_bar = getattr(utils, "ProgressBar", None)
                if progress_bar is not None:
                    try:
                        self._bar = progress_bar(self.total, node_id=self.node_id)
                    except Exception:
                        logger.debug("no progress bar", exc_info=True)
            return self._bar


def _no_markup(value: Any) -> Any:
    """``value`` with every string's angle brackets swapped for look-alikes."""
    if isinstance(value, str):
        return value.translate(_NO_MARKUP)
    if isinstance(value, dict):
        return {key: _no_markup(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_markup(item) for item in value]
    return value


def _raise_interrupt_flag_again() -> None:
    """Put back the Cancel flag ComfyUI's hook consumed, so other running nodes see it too."""
    management = _comfy_module("comfy.model_management")
    try:
        management.interrupt_current_processing(True)
    except Exception:
        pass


def _comfy_module(name: str) -> Any:
    """ComfyUI's module ``name`` if we run inside ComfyUI, else None (nothing is imported)."""
    if "folder_paths" not in sys.modules:
        return None
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        import importlib

        return importlib.import_module(name)
    except Exception:
        return None
