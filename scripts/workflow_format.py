"""ComfyUI workflow files: the UI format the editor saves, as frontend 1.35 lays it out.

Used by the workflow tests (validation against node definitions), the integration tests (UI -> API
format, which ComfyUI's /prompt takes) and scripts/build_workflows.py. No ComfyUI import: node
definitions are `/object_info` entries (recorded, fetched from a server, or built from the pack's
INPUT_TYPES with `definition_from_class`).

Frontend 1.35 facts this encodes (checked against the real frontend by scripts/build_workflows.py,
which also compares `ui_to_api` with the frontend's own graphToPrompt):
- `widgets_values` holds one value per widget input, in input order (required, then optional),
  whether or not a link feeds that input; a link wins over the widget value when the prompt is built.
- An INT input gets an extra "control_after_generate" value right after it when its options say
  `control_after_generate: true`, or when it is named seed / noise_seed and the option is absent.
- `image_upload` / `video_upload` combos are followed by the upload button's value; `audio_upload`
  by the audio player's and the upload button's.
- Note / MarkdownNote / Reroute / PrimitiveNode exist only in the frontend and are not sent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
SEED_NAMES = ("seed", "noise_seed")
MODE_NEVER, MODE_BYPASS = 2, 4  # LiteGraph node modes: muted, bypassed


@dataclass(frozen=True)
class Slot:
    """One entry of a node's widgets_values: an input's widget, or an extra the frontend adds."""

    name: str
    kind: str  # INT | FLOAT | STRING | BOOLEAN | COMBO | control | upload | audio_ui
    spec: tuple = ()  # the input's [type, options] for real inputs

    @property
    def is_input(self) -> bool:
        return self.kind in WIDGET_TYPES


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def widget_kind(spec) -> str | None:
    """The widget kind of an input spec, or None for a socket-only input."""
    if not spec:
        return None
    kind, opts = spec[0], _options(spec)
    if isinstance(kind, list):
        return "COMBO"
    if kind == "COMBO":
        return "COMBO"
    if opts.get("forceInput"):
        return None
    if opts.get("widgetType"):
        # A custom widget (e.g. the schedule editor) holds the input's value like the core one would.
        return kind if kind in WIDGET_TYPES else "STRING"
    return kind if kind in WIDGET_TYPES else None


def combo_options(spec) -> list:
    if isinstance(spec[0], list):
        return list(spec[0])
    return list(_options(spec).get("options") or [])


def input_order(node_def: Mapping) -> list[tuple[str, tuple]]:
    """(name, spec) of the required then optional inputs, in the order the frontend creates them."""
    order = node_def.get("input_order") or {}
    inputs = node_def.get("input") or {}
    out = []
    for group in ("required", "optional"):
        specs = inputs.get(group) or {}
        names = order.get(group) or list(specs)
        out += [(n, tuple(specs[n])) for n in names if n in specs]
    return out


def widget_layout(node_def: Mapping) -> list[Slot]:
    """The widgets_values layout the frontend saves for a node with this definition."""
    slots: list[Slot] = []
    for name, spec in input_order(node_def):
        kind = widget_kind(spec)
        if kind is None:
            continue
        slots.append(Slot(name, kind, spec))
        opts = _options(spec)
        if kind == "INT":
            control = opts.get("control_after_generate")
            if control is True or (control is None and name in SEED_NAMES):
                slots.append(Slot("control_after_generate", "control"))
        if kind == "COMBO":
            if opts.get("image_upload") or opts.get("video_upload"):
                slots.append(Slot("upload", "upload"))
            elif opts.get("audio_upload"):
                slots += [Slot("audioUI", "audio_ui"), Slot("upload", "upload")]
    return slots


def widget_values(node: Mapping, node_def: Mapping) -> dict[str, Any]:
    """The values of a UI node's input widgets by input name (extras such as upload buttons left out)."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):  # some custom nodes save a dict; none of ours do
        return dict(values)
    layout = widget_layout(node_def)
    return {slot.name: value for slot, value in zip(layout, values) if slot.is_input}


def _links_by_id(workflow: Mapping) -> dict[int, list]:
    return {link[0]: link for link in workflow.get("links") or []}


def ui_to_api(workflow: Mapping, definitions: Mapping[str, Mapping]) -> dict[str, dict]:
    """The API-format prompt ComfyUI's /prompt takes, built like the frontend's graphToPrompt.

    Nodes that are muted (mode 2) or frontend-only are left out; bypassed nodes (mode 4) are not
    supported here (raise), since none of the pack's workflows ship with one.
    """
    links = _links_by_id(workflow)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        ntype = node["type"]
        if ntype in FRONTEND_ONLY_NODES or node.get("mode", 0) == MODE_NEVER:
            continue
        if node.get("mode", 0) == MODE_BYPASS:
            raise ValueError(f"node {node['id']} ({ntype}) is bypassed; ui_to_api does not reroute bypassed nodes")
        if ntype not in definitions:
            raise KeyError(f"node {node['id']}: no definition for node type {ntype!r}")
        node_def = definitions[ntype]
        inputs: dict[str, Any] = dict(widget_values(node, node_def))
        for inp in node.get("inputs") or []:
            link_id = inp.get("link")
            if link_id is None:
                continue
            link = links[link_id]
            origin = nodes[link[1]]
            if origin.get("mode", 0) == MODE_NEVER:
                inputs.pop(inp["name"], None)
                continue
            inputs[inp["name"]] = [str(link[1]), link[2]]
        known = {name for name, _ in input_order(node_def)}
        inputs = {k: v for k, v in inputs.items() if k in known}
        entry = {"inputs": inputs, "class_type": ntype}
        title = node.get("title")
        entry["_meta"] = {"title": title or node_def.get("display_name") or ntype}
        prompt[str(node["id"])] = entry
    return prompt


# ---- validation ---------------------------------------------------------------------------------

def _check_number(kind: str, value, opts: dict) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {value!r}"
    if kind == "INT" and not float(value).is_integer():
        return f"expected an integer, got {value!r}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    lo, hi = opts.get("min"), opts.get("max")
    if lo is not None and value < lo:
        return f"{value!r} is below the minimum {lo!r}"
    if hi is not None and value > hi:
        return f"{value!r} is above the maximum {hi!r}"
    return None


def check_value(slot: Slot, value, file_pattern: str | None = None) -> str | None:
    """Why `value` is not valid for this widget slot, or None."""
    if slot.kind == "control":
        return None if value in CONTROL_VALUES else f"expected one of {CONTROL_VALUES}, got {value!r}"
    if slot.kind in ("upload", "audio_ui"):
        return None  # frontend-only state, never sent
    opts = _options(slot.spec)
    if slot.kind in ("INT", "FLOAT"):
        return _check_number(slot.kind, value, opts)
    if slot.kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if slot.kind == "STRING":
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    if slot.kind == "COMBO":
        if file_pattern is not None:
            if isinstance(value, str) and re.fullmatch(file_pattern, value):
                return None
            return f"expected a file name matching {file_pattern!r}, got {value!r}"
        options = combo_options(slot.spec)
        return None if value in options else f"{value!r} is not one of {options[:20]}"
    return f"unknown widget kind {slot.kind}"


def check_workflow(workflow: Mapping, definitions: Mapping[str, Mapping],
                   file_inputs: Mapping[tuple[str, str], str] | None = None) -> list[str]:
    """Every problem found in a UI-format workflow, as readable lines ([] = valid).

    `file_inputs` maps (node type, input name) to a regex for combos that list files on the user's
    machine (models, inputs), whose options differ from machine to machine.
    """
    file_inputs = dict(file_inputs or {})
    problems: list[str] = []
    for key in ("nodes", "links", "version"):
        if key not in workflow:
            problems.append(f"workflow: missing {key!r}")
    if problems:
        return problems
    nodes = {}
    for node in workflow["nodes"]:
        if node["id"] in nodes:
            problems.append(f"node {node['id']}: duplicate id")
        nodes[node["id"]] = node
    links = _links_by_id(workflow)

    for node in workflow["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        ntype = node["type"]
        if ntype in FRONTEND_ONLY_NODES:
            continue
        node_def = definitions.get(ntype)
        if node_def is None:
            problems.append(f"{where}: unknown node type")
            continue
        layout = widget_layout(node_def)
        values = node.get("widgets_values") or []
        if len(values) != len(layout):
            problems.append(f"{where}: {len(values)} widget values, the definition has {len(layout)} "
                            f"({', '.join(s.name for s in layout)})")
        for slot, value in zip(layout, values):
            err = check_value(slot, value, file_inputs.get((ntype, slot.name)))
            if err:
                problems.append(f"{where}.{slot.name}: {err}")

        specs = dict(input_order(node_def))
        required = set((node_def.get("input") or {}).get("required") or {})
        seen = set()
        for inp in node.get("inputs") or []:
            name = inp["name"]
            seen.add(name)
            spec = specs.get(name)
            if spec is None:
                # Unlinked extras (an upload button's socket) are the frontend's own business.
                if inp.get("link") is not None:
                    problems.append(f"{where}: input {name!r} is not in the definition")
                continue
            link_id = inp.get("link")
            if link_id is None:
                if name in required and widget_kind(spec) is None:
                    problems.append(f"{where}: required input {name!r} is not connected")
                continue
            link = links.get(link_id)
            if link is None:
                problems.append(f"{where}.{name}: link {link_id} does not exist")
                continue
            _, src_id, src_slot, dst_id, dst_slot, ltype = link[:6]
            if dst_id != node["id"]:
                problems.append(f"{where}.{name}: link {link_id} ends at node {dst_id}")
            src = nodes.get(src_id)
            if src is None:
                problems.append(f"{where}.{name}: link {link_id} starts at missing node {src_id}")
                continue
            src_def = definitions.get(src["type"])
            if src_def is None:
                continue  # reported for that node
            outputs = src_def.get("output") or []
            if not 0 <= src_slot < len(outputs):
                problems.append(f"{where}.{name}: link {link_id} uses output {src_slot} of {src['type']}, "
                                f"which has {len(outputs)}")
                continue
            out_type = outputs[src_slot]
            out_type = "COMBO" if isinstance(out_type, list) else out_type
            in_type = "COMBO" if isinstance(spec[0], list) else spec[0]
            if not _types_match(out_type, in_type):
                problems.append(f"{where}.{name}: {src['type']} output {src_slot} is {out_type}, the input takes {in_type}")
            if ltype not in (out_type, "*") and not _types_match(ltype, in_type):
                problems.append(f"{where}.{name}: link {link_id} is typed {ltype}, the output is {out_type}")
        for name in required:
            if name not in seen and widget_kind(specs[name]) is None:
                problems.append(f"{where}: required input {name!r} is missing")

    for link in workflow["links"]:
        link_id, src_id, src_slot, dst_id, dst_slot = link[:5]
        src, dst = nodes.get(src_id), nodes.get(dst_id)
        if src is None or dst is None:
            problems.append(f"link {link_id}: connects missing node(s) {src_id} -> {dst_id}")
            continue
        outs = src.get("outputs") or []
        if not 0 <= src_slot < len(outs) or link_id not in (outs[src_slot].get("links") or []):
            problems.append(f"link {link_id}: not listed on output {src_slot} of node {src_id}")
        ins = dst.get("inputs") or []
        if not 0 <= dst_slot < len(ins) or ins[dst_slot].get("link") != link_id:
            problems.append(f"link {link_id}: not the link of input {dst_slot} of node {dst_id}")
    return problems


def _types_match(a: str, b: str) -> bool:
    if a == "*" or b == "*":
        return True
    sa, sb = set(str(a).split(",")), set(str(b).split(","))
    return bool(sa & sb)


def node_types(workflow: Mapping) -> set[str]:
    return {n["type"] for n in workflow.get("nodes") or []}


def definition_from_class(name: str, cls, display_name: str | None = None) -> dict:
    """An /object_info-style entry for a classic-API node class (what ComfyUI's server builds)."""
    types = cls.INPUT_TYPES()
    inputs = {g: {k: list(v) if isinstance(v, tuple) else v for k, v in (types.get(g) or {}).items()}
              for g in ("required", "optional", "hidden") if types.get(g) is not None}
    out = list(getattr(cls, "RETURN_TYPES", ()))
    return {
        "input": inputs,
        "input_order": {g: list(v) for g, v in inputs.items()},
        "output": out,
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(out))),
        "output_name": list(getattr(cls, "RETURN_NAMES", out)),
        "name": name,
        "display_name": display_name or name,
        "description": getattr(cls, "DESCRIPTION", ""),
        "category": getattr(cls, "CATEGORY", ""),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }

