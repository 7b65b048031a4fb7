"""ComfyUI entry point of the OmniHuman pack: node mappings and the web directory. Nothing else.

The node classes live in `nodes/` (thin adapters over `omnihuman_core`).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web/js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
