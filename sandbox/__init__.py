"""A local stand-in for the API in One Grok Imagine API: a real HTTP server on 127.0.0.1.

Users run it to build workflows without spending credits (``grok-imagine sandbox``); tests start it
in-process on a free port and flip its fault switches. It depends on nothing else in the pack.
"""

from .config import ASPECT_SIZES, DEFAULT_KEY, PRICES, TEXT_TO_IMAGE, UPSCALE, SandboxConfig
from .faults import DOWNLOAD_FAULTS, Faults
from .server import FileRequest, Sandbox
from .shapes import SHAPES
from .store import Ledger, TaskInfo

__all__ = [
    "ASPECT_SIZES",
    "DEFAULT_KEY",
    "DOWNLOAD_FAULTS",
    "PRICES",
    "SHAPES",
    "TEXT_TO_IMAGE",
    "UPSCALE",
    "Faults",
    "FileRequest",
    "Ledger",
    "Sandbox",
    "SandboxConfig",
    "TaskInfo",
]
