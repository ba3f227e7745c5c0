"""ComfyUI node classes of the pack (thin adapters over journal/ and api/)."""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
