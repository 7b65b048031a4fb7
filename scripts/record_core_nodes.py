"""Record the /object_info entries of the core ComfyUI nodes the pack's workflows use.

    COMFYUI_PATH=/path/to/ComfyUI python scripts/record_core_nodes.py

Starts that ComfyUI (with the pack, in a throw-away base directory, so folders that list files are
empty), reads /object_info and writes tests/workflows/core_nodes.json: every node type in
workflows/*.json that is neither the pack's nor frontend-only. tests/workflows checks the workflows
against this record, so CI needs no ComfyUI. Re-run it after adding a core node to a workflow or
moving to a new ComfyUI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_harness import PACK_DIR, ComfyUIServer, prepare_base_dir  # noqa: E402
from workflow_format import FRONTEND_ONLY_NODES, node_types  # noqa: E402

OUT = PACK_DIR / "tests" / "workflows" / "core_nodes.json"


def core_types(workflow_dir: Path, object_info: dict) -> list[str]:
    used = set()
    for path in sorted(workflow_dir.glob("*.json")):
        used |= node_types(json.loads(path.read_text()))
    pack = {k for k, v in object_info.items() if str(v.get("python_module", "")).startswith("custom_nodes.")}
    return sorted(used - pack - FRONTEND_ONLY_NODES)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (default: $COMFYUI_PATH)")
    ap.add_argument("--workflows", default=str(PACK_DIR / "workflows"))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    if not args.comfyui:
        ap.error("give --comfyui or set COMFYUI_PATH")
    with tempfile.TemporaryDirectory(prefix="omnihuman-record-") as tmp:
        base = prepare_base_dir(tmp)
        with ComfyUIServer(args.comfyui, base) as server:
            info = server.object_info()
            stats = server.get_json("/system_stats")
    types = core_types(Path(args.workflows), info)
    missing = [t for t in types if t not in info]
    if missing:
        print(f"not in this ComfyUI's /object_info: {missing}", file=sys.stderr)
        return 1
    record = {
        "comfyui_version": stats.get("system", {}).get("comfyui_version"),
        "note": "recorded by scripts/record_core_nodes.py from a ComfyUI with empty model and input folders",
        "nodes": {t: info[t] for t in types},
    }
    Path(args.out).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}: {', '.join(types)} (ComfyUI {record['comfyui_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
