"""ComfyUI node classes of the pack (thin adapters over journal/ and api/).

Importing this declares the nodes only: no network, no threads, none of requests, PIL, numpy,
torch or sqlite3 (they load when a node first runs).
"""

from .load_task import GrokImagineLoadTask
from .text_to_image import GrokImagineTextToImage
from .upscale import GrokImagineUpscale

_NODES = (GrokImagineTextToImage, GrokImagineUpscale, GrokImagineLoadTask)

NODE_CLASS_MAPPINGS: dict[str, type] = {node.__name__: node for node in _NODES}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {node.__name__: node.DISPLAY_NAME for node in _NODES}

# The Settings entry's and the panel's routes join ComfyUI's server (their handlers load on the
# first request); a no-op outside ComfyUI.
from .server_routes import register_if_in_comfyui  # noqa: E402

register_if_in_comfyui()
