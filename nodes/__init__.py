"""ComfyUI node classes of the pack (thin adapters over journal/ and api/)."""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

# The Settings entry's API-key route joins ComfyUI's server; a no-op outside ComfyUI.
from .settings_route import register_if_in_comfyui  # noqa: E402

register_if_in_comfyui()
