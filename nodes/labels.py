"""How our nodes are named and found in the node search, told apart from ComfyUI's own Grok nodes.

ComfyUI 0.33 ships "Grok Image" / "Grok Video" partner nodes (billed in Comfy credits). Ours are
labelled with the gateway that bills them, at the start of the name: the older node search
(frontend 1.27) matches only the name and id, and weighs where in the name a word appears, so
"apiinone" finds a name that starts with "API in One" and not one that ends with it. Newer
ComfyUIs also read ``SEARCH_ALIASES``.
"""

from __future__ import annotations

GATEWAY = "API in One"
CATEGORY = "Grok Imagine"
ACCOUNT = (
    f"Uses your {GATEWAY} key and account: not one of ComfyUI's own Grok nodes (those are "
    "billed in Comfy credits)."
)
COMMON_ALIASES = ("grok", "grok imagine", "xai", "api in one", "apiinone", "apiin.one")


def display_name(what: str) -> str:
    """``"Grok Upscale"`` -> ``"API in One · Grok Upscale"``."""
    return f"{GATEWAY} · {what}"


def search_aliases(*own: str) -> list[str]:
    return [*COMMON_ALIASES, *own]
