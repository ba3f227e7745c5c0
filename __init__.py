"""ComfyUI-Grok-Imagine: xAI Grok Imagine nodes for ComfyUI, through the API in One gateway.

ComfyUI imports this file from the pack's folder under a module name of its own choosing, so
everything below is imported relatively. Importing is cheap and has no side effects: no network,
no threads, no torch; the HTTP client and image libraries load when a node first runs.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web/js"

__version__ = "0.1.0"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
