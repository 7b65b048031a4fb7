"""A chat-completions server on 127.0.0.1 that answers the pack's agents from their JSON schemas.

For the browser test: the System 2 workflow needs an OpenAI-compatible endpoint, and no network is
allowed. Replies are valid for the caption, analysis, plan and reflection requests (found by the
`response_format` name, or the system prompt when the client stepped down to plain JSON), and carry
a recognisable marker so the test can tell the LLM's schedule from an offline one.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARKER = "fake-llm"
# Plausible shots (they end up in the README's screenshot of the schedule editor).
SHOTS = [
    {"expression": "warm smile", "action": "holds up a letter and reads it out", "camera": "static medium shot",
     "prompt": "The character holds up a letter and reads it out with a warm smile, static medium shot."},
    {"expression": "delighted", "action": "lowers the letter and waves at the viewer", "camera": "slow zoom in",
     "prompt": "The character lowers the letter and waves at the viewer, delighted; slow zoom in."},
    {"expression": "calm, attentive", "action": "nods while listening", "camera": "static close-up",
     "prompt": "The character nods calmly while listening, static close-up."},
]


def _value(name: str, schema: dict, index: int = 0):
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {k: _value(k, s, index) for k, s in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(0, int(schema.get("minimum", 0)))
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    text = f"{MARKER} {name} {index}"
    return text[: schema.get("maxLength", len(text))]


def _user_text(body: dict) -> str:
    out = []
    for m in body.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out += [p.get("text", "") for p in c if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(out)


def _schema(body: dict) -> tuple[str, dict]:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        js = fmt["json_schema"]
        return js.get("name", ""), js.get("schema") or {}
    # Plain JSON mode: the schema is in the system prompt; the agent is told by what it asks for.
    text = _user_text(body)
    name = ("reflection" if "Revise segments" in text else "plan" if "Plan exactly" in text
            else "caption" if '"caption"' in text and '"persona"' not in text else "analysis")
    found = re.search(r"(\{\"type\": \"object\".*\})", text, re.S)
    return name, json.loads(found.group(1)) if found else {}


def answer(body: dict) -> dict:
    """The JSON object the fake model replies with."""
    name, schema = _schema(body)
    text = _user_text(body)
    if name == "caption":
        return {"caption": f"{MARKER}: a cartoon character facing the camera"}
    if name == "analysis":
        data = _value("analysis", schema)
        data["emotion_over_time"] = [{"start": 0.0, "end": 0.5, "emotion": "calm"}]
        return data
    if name == "plan":
        n = int(re.search(r"Plan exactly (\d+) shots", text).group(1))
        item = schema["properties"]["shots"]["items"]
        shots = []
        for i in range(n):
            shot = _value("shot", item, i)
            shot.update(SHOTS[i % len(SHOTS)], speaking=True, rationale=f"{MARKER}: shot {i} follows the speech")
            shots.append(shot)
        return {"rationale": f"{MARKER} rationale", "shots": shots}
    if name == "reflection":
        first, last = map(int, re.search(r"Revise segments (\d+) to (\d+)", text).groups())
        item = schema["properties"]["shots"]["items"]
        shots = []
        for i in range(first, last + 1):
            shot = _value("shot", item, i)
            shot.update(segment=i, rationale="unchanged")
            shots.append(shot)
        return {"observation": f"{MARKER} observation", "shots": shots}
    return _value(name, schema)


class FakeLLM:
    """Serves POST /v1/chat/completions and GET /v1/models; records each request's agent name."""

    def __init__(self):
        self.calls: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, obj: dict):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                name, _ = _schema(body)
                server.calls.append(name)
                content = json.dumps(answer(body))
                self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
