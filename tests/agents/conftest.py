"""A real HTTP server on 127.0.0.1 that speaks chat completions and answers from a per-test script,
plus small inputs (image, speech-like audio) for the agents."""

from __future__ import annotations

import json
import threading
import wave
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

SR = 16000
SECRET = "sk-test-SECRET-0123456789abcdef"
KEY_VAR = "OMNIHUMAN_TEST_LLM_KEY"


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny tensors: torch's thread pool costs more than it gives on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as is
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str | None, *, refusal: str | None = None, finish_reason: str = "stop") -> Reply:
    """A chat.completion object with one choice."""
    message = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    return Reply(body={
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "test-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })


def json_reply(obj: Any) -> Reply:
    return completion(json.dumps(obj))


def error(status: int, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "test_error", "code": None}}, headers or {})


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: Any

    @property
    def user_parts(self) -> list[dict]:
        parts = []
        for m in self.body.get("messages", []):
            if m["role"] == "user" and isinstance(m["content"], list):
                parts += m["content"]
        return parts

    def text(self) -> str:
        """All text the request carries (system + user text parts), for assertions."""
        out = []
        for m in self.body.get("messages", []):
            c = m["content"]
            out.append(c if isinstance(c, str) else "\n".join(p.get("text", "") for p in c if p.get("type") == "text"))
        return "\n".join(out)


class ScriptedLLMServer:
    """Answers POST .../chat/completions from `script` (a Reply, or a function of the request -> Reply)."""

    def __init__(self):
        self.script: deque = deque()
        self.requests: list[Request] = []
        self.default: Callable[[Request], Reply] | None = None
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, reply: Reply):
                if reply.delay:
                    server._stop.wait(reply.delay)
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = body.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json" if not isinstance(reply.body, str)
                                     else "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

            def do_GET(self):
                server.requests.append(Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                self._send(Reply(body={"object": "list", "data": [{"id": "test-model", "object": "model"}]}))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                req = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(req)
                if not self.path.endswith("/chat/completions"):
                    return self._send(error(404, f"no route {self.path}"))
                if server.script:
                    item = server.script.popleft()
                elif server.default is not None:
                    item = server.default
                else:
                    return self._send(error(500, "test script exhausted"))
                self._send(item(req) if callable(item) else item)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    def push(self, *items) -> "ScriptedLLMServer":
        self.script.extend(items)
        return self

    def close(self):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def llm_server():
    server = ScriptedLLMServer()
    yield server
    server.close()


@pytest.fixture
def make_config(tmp_path):
    """LLMConfig for the test server: short timeouts, no real waiting, cache inside tmp_path."""
    from omnihuman_core.agents.llm import LLMConfig

    def make(url, **kw):
        base = dict(base_url=url, model="test-model", timeout=5.0, max_retries=2, backoff=0.001, backoff_max=0.01,
                    cache_dir=tmp_path / "cache", raw_reply_dir=tmp_path / "failed")
        return LLMConfig(**{**base, **kw})

    return make


def speechy(durations=((0.5, 0), (4.0, 1), (4.5, 0), (3.5, -1), (0.5, 0))) -> torch.Tensor:
    """Voiced harmonic stretches (pitch rising for +1, falling for -1) separated by near-silence."""
    rng = np.random.default_rng(0)
    parts = []
    for dur, direction in durations:
        n = int(dur * SR)
        if direction == 0:
            parts.append(np.zeros(n))
            continue
        t = np.arange(n) / SR
        f = np.linspace(140, 240, n) if direction > 0 else np.linspace(240, 140, n)
        phase = 2 * np.pi * np.cumsum(f) / SR
        parts.append(0.3 * sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)))
    w = np.concatenate(parts)
    w = w + rng.normal(0, 1e-3, w.size)
    return torch.from_numpy(w.astype(np.float32))


@pytest.fixture
def media(tmp_path) -> dict:
    """A reference image and a 13 s speech-like WAV on disk (3 segments: speaking, silent, speaking)."""
    img = Image.new("RGB", (64, 96), (180, 120, 90))
    for x in range(20, 44):
        for y in range(20, 50):
            img.putpixel((x, y), (240, 200, 170))
    image_path = tmp_path / "ref.png"
    img.save(image_path)
    wav = tmp_path / "speech.wav"
    w = speechy().numpy()
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SR)
        f.writeframes((np.clip(w, -1, 1) * 32767).astype("<i2").tobytes())
    return {"image": image_path, "audio": wav, "pil": img}


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under root whose bytes contain needle."""
    hits = []
    for p in Path(root).rglob("*"):
        if p.is_file() and needle.encode() in p.read_bytes():
            hits.append(p)
    return hits


def _block(text: str, name: str) -> str:
    start = text.index(f"<<<BEGIN DATA: {name}")
    start = text.index("\n", start) + 1
    return text[start:text.index(f"<<<END DATA: {name}", start)]


def agent_role(req: Request) -> str:
    system = req.body["messages"][0]["content"]
    if system.startswith("You describe a reference image"):
        return "caption"
    if system.startswith("You are the Analyzer"):
        return "analysis"
    if "reflecting on the video" in system:
        return "reflection"
    return "plan"


def fake_mllm(req: Request, *, action=lambda i: f"gestures while talking, step {i}") -> Reply:
    """A well-behaved model: valid answers for each agent, shaped by what the request asks."""
    role = agent_role(req)
    text = req.text()
    if role == "caption":
        return json_reply({"caption": "A woman in a red coat holding an envelope, medium shot, studio background."})
    if role == "analysis":
        return json_reply({
            "reasoning": "The image shows a woman with an envelope; the audio has two speech spans.",
            "persona": "a warm, thoughtful woman in her thirties", "language_style": "calm, personal",
            "speech_content": "unknown", "emotion_over_time": [{"start": 0.0, "end": 4.0, "emotion": "hopeful"},
                                                               {"start": 4.0, "end": 9.0, "emotion": "moved"}],
            "intent": "to share news from a letter", "environment": "a quiet studio; an envelope in her hands"})
    if role == "plan":
        rows = [json.loads(line) for line in _block(text, "segments").strip().splitlines()]
        return json_reply({"rationale": "one shot per segment, following the emotion", "shots": [
            {"start": r["start"], "end": r["end"], "speaking": r["speaking"], "expression": "hopeful",
             "action": action(r["segment"]), "camera": "static medium shot",
             "prompt": f"A woman in a red coat {action(r['segment'])}.", "rationale": "follows the speech"}
            for r in rows]})
    plan = [json.loads(line) for line in _block(text, "plan").strip().splitlines()]
    todo = [p for p in plan if p["status"] == "to render"]
    return json_reply({"observation": "the envelope is still in her hands", "shots": [
        {"segment": p["segment"], "expression": p["expression"], "action": p["action"] + " (revised)",
         "camera": p["camera"], "prompt": p["prompt"] + " She keeps holding the envelope.",
         "rationale": "keep the envelope visible"} for p in todo]})


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (a port that was just free)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
