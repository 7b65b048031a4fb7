"""Helpers of the node tests: the pack imported as ComfyUI imports it, inputs, a fake LLM endpoint."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

PACK_DIR = Path(__file__).resolve().parents[2]
PACK_NAME = "omnihuman_nodes_test_pack"
FPS = 8
# Tiny render settings recorded in the tiny MMDiT's file, as the trainer's export does: 16 px video,
# 13-frame segments overlapping by 5 (each later segment adds 8 frames), 2 steps, the mel front end
# with a 1-frame window (80 x 1 = the MMDiT's audio_dim).
# Like the shipped demo's, with the reference pinned as the first frame too: the sampler node and the chainer
# must both pin it (tests/nodes/test_system1.py compares their first segments).
RENDER_DEFAULTS = {"fps": FPS, "segment_frames": 13, "motion_frames": 5, "short_side": 16, "steps": 2,
                   "audio_window": 1, "first_frame_from_reference": True}


def load_pack():
    """Import the pack's __init__ as a package by file path, as ComfyUI's loader does."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(PACK_NAME, PACK_DIR / "__init__.py",
                                                  submodule_search_locations=[str(PACK_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


# ---- inputs -----------------------------------------------------------------------------------------
def image(h=24, w=40, batch=1):
    """ComfyUI IMAGE: a smooth colour gradient (the VAE and the preview fit need some structure)."""
    y = torch.linspace(0, 1, h)[:, None].expand(h, w)
    x = torch.linspace(0, 1, w)[None, :].expand(h, w)
    img = torch.stack([x, y, 0.5 * (x + y)], -1)
    return img[None].repeat(batch, 1, 1, 1)


def speech(seconds, rate=22050, channels=2):
    """ComfyUI AUDIO: an amplitude-modulated tone, syllable-like bursts, in [1, C, N]."""
    t = torch.arange(int(round(seconds * rate))) / rate
    wave = 0.3 * torch.sin(2 * math.pi * 220 * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 3 * t))
    return {"waveform": wave.repeat(channels, 1)[None].contiguous(), "sample_rate": rate}


def features(nodes, model, seconds):
    audio = speech(seconds)
    return nodes.OmniHumanAudioEncoder().encode(audio, model, "mel (built-in)")[0], audio


def offline_schedule(nodes, model, img, audio, prompt="She waves, then smiles."):
    analysis = nodes.OmniHumanAnalyzer().analyze(img, audio, prompt)[0]
    return nodes.OmniHumanPlanner().plan(analysis, audio, model)[0]


# ---- a fake OpenAI-compatible endpoint ----------------------------------------------------------------
def _value(schema, label):
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {k: _value(s, k) for k, s in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 0
    return f"fake {label}"


def _text(body):
    out = []
    for m in body.get("messages", []):
        c = m.get("content")
        out += [c] if isinstance(c, str) else [p.get("text", "") for p in c or [] if p.get("type") == "text"]
    return "\n".join(out)


def _answer(body):
    fmt = (body.get("response_format") or {}).get("json_schema") or {}
    name, schema, text = fmt.get("name", ""), fmt.get("schema") or {}, _text(body)
    if name == "caption":
        return {"caption": "fake caption: a character facing the camera"}
    if name == "analysis":
        data = _value(schema, "analysis")
        data["emotion_over_time"] = [{"start": 0.0, "end": 0.5, "emotion": "calm"}]
        return data
    if name == "plan":
        n = int(re.search(r"Plan exactly (\d+) shots", text).group(1))
        item = schema["properties"]["shots"]["items"]
        return {"rationale": "fake rationale",
                "shots": [{**_value(item, "shot"), "prompt": f"LLM shot {i}: talks to the camera"} for i in range(n)]}
    if name == "reflection":
        first, last = map(int, re.search(r"Revise segments (\d+) to (\d+)", text).groups())
        item = schema["properties"]["shots"]["items"]
        return {"observation": "fake observation",
                "shots": [{**_value(item, "shot"), "segment": i, "prompt": f"reflected shot {i}"}
                          for i in range(first, last + 1)]}
    raise AssertionError(f"unexpected request {name!r}")


class FakeLLM:
    """Chat completions on 127.0.0.1; records every request (agent name and Authorization header)."""

    def __init__(self):
        self.calls: list[str] = []
        self.auth: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, obj):
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "test"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.auth.append(self.headers.get("Authorization", ""))
                fake.calls.append(((body.get("response_format") or {}).get("json_schema") or {}).get("name", "?"))
                self._send({"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": json.dumps(_answer(body))}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
