"""ComfyUI node classes, one file per stage. The nodes arrive with the ComfyUI pack issue; until then
the pack registers no nodes (and loads cleanly)."""

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
