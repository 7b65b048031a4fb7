"""Run a real ComfyUI with this pack, without touching the ComfyUI checkout.

Everything ComfyUI writes or reads besides its own code lives in a throw-away base directory
(`--base-directory`): custom_nodes/ (a symlink to this pack), models/, input/, output/, temp/,
user/. Used by tests/integration (pytest fixtures), scripts/build_workflows.py and
scripts/record_core_nodes.py. Standard library only, so it runs in any Python.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
PACK_NAME = "omnihuman"  # the folder name under custom_nodes/ (also the model folder name)
# Lines ComfyUI prints when a custom node package fails to import.
IMPORT_FAILURE_MARKERS = ("IMPORT FAILED", "Cannot import", "Traceback (most recent call last)")


class ComfyUIError(RuntimeError):
    pass


def find_comfy_python(comfy_path: str | os.PathLike) -> str:
    """The Python that runs this ComfyUI: $COMFYUI_PYTHON, its venv/.venv, else the current one."""
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    root = Path(comfy_path)
    for venv in ("venv", ".venv"):
        for rel in ("bin/python", "Scripts/python.exe"):
            candidate = root / venv / rel
            if candidate.exists():
                return str(candidate)
    return sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_base_dir(base: str | os.PathLike, pack_dir: str | os.PathLike = PACK_DIR,
                     settings: dict | None = None) -> Path:
    """Lay out a ComfyUI base directory with the pack linked in; returns it."""
    base = Path(base)
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user/default"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_NAME
    if link.is_symlink() or link.exists():
        if link.is_symlink():
            link.unlink()
        else:
            raise ComfyUIError(f"{link} exists and is not a symlink; use a fresh base directory")
    link.symlink_to(Path(pack_dir).resolve(), target_is_directory=True)
    # A fresh user folder would greet a browser with the template picker and a tour; the minimap and
    # the canvas statistics would cover part of the screenshots. Workflow validation on load is the
    # frontend's default, kept on so loading a workflow checks it.
    defaults = {"Comfy.TutorialCompleted": True, "Comfy.Validation.Workflows": True, "Comfy.Minimap.Visible": False,
                "Comfy.Graph.CanvasInfo": False}
    defaults.update(settings or {})
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(defaults, indent=2))
    return base


class ComfyUIServer:
    """One ComfyUI process on 127.0.0.1 with its own base directory; stop() ends only that process."""

    def __init__(self, comfy_path: str | os.PathLike, base_dir: str | os.PathLike, *, port: int | None = None,
                 python: str | None = None, extra_args: tuple[str, ...] = (), env: dict | None = None):
        self.comfy_path = Path(comfy_path).resolve()
        if not (self.comfy_path / "main.py").exists():
            raise ComfyUIError(f"{self.comfy_path} has no main.py; COMFYUI_PATH must point at a ComfyUI checkout")
        self.base_dir = Path(base_dir).resolve()
        self.port = port or free_port()
        self.python = python or find_comfy_python(self.comfy_path)
        self.extra_args = tuple(extra_args)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base_dir / "comfyui.log"
        self.client_id = uuid.uuid4().hex

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240.0) -> "ComfyUIServer":
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base_dir), "--disable-auto-launch", *self.extra_args]
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_path, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ComfyUIError(f"ComfyUI exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=5)
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1.0)
        self.stop()
        raise ComfyUIError(f"ComfyUI did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # The process leads its own session (start_new_session), so this group is only ComfyUI's.
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- HTTP ----------------------------------------------------------------------------------
    def request(self, path: str, data: dict | None = None, timeout: float = 60.0) -> bytes:
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read()

    def get_json(self, path: str, timeout: float = 60.0):
        return json.loads(self.request(path, timeout=timeout))

    def post_json(self, path: str, data: dict, timeout: float = 60.0):
        try:
            return json.loads(self.request(path, data, timeout=timeout))
        except urllib.error.HTTPError as e:
            raise ComfyUIError(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')[:4000]}") from None

    def object_info(self) -> dict:
        return self.get_json("/object_info")

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        """Queue an API-format prompt; returns its id (ComfyUI validates it first and says what is wrong)."""
        payload = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            payload["extra_data"] = extra_data
        answer = self.post_json("/prompt", payload)
        if answer.get("node_errors"):
            raise ComfyUIError(f"prompt refused: {json.dumps(answer['node_errors'])[:4000]}")
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600.0, poll: float = 1.0) -> dict:
        """The history entry of a finished prompt; raises with the error and the log tail if it failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ComfyUIError(f"ComfyUI exited while running {prompt_id}:\n{self.log_tail()}")
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") != "success":
                    errors = [m for m in status.get("messages", []) if m[0] == "execution_error"]
                    raise ComfyUIError(f"prompt {prompt_id} failed: {json.dumps(errors)[:4000]}\n{self.log_tail()}")
                return entry
            time.sleep(poll)
        raise ComfyUIError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


def output_files(entry: dict, base_dir: str | os.PathLike) -> list[Path]:
    """Files a finished prompt saved, from its history entry (images, videos, audio of every output node)."""
    base = Path(base_dir)
    found = []
    for node_out in (entry.get("outputs") or {}).values():
        for key, items in node_out.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    folder = {"output": "output", "temp": "temp", "input": "input"}.get(item.get("type", "output"), "output")
                    found.append(base / folder / item.get("subfolder", "") / item["filename"])
    return found


# ---- model files --------------------------------------------------------------------------------

DEMO_FILES = {"mmdit": "mmdit.safetensors", "vae": "vae.safetensors", "text_encoder": "text_encoder.safetensors",
              "upscaler": "upscaler.safetensors"}
# Small enough that a minute of audio renders in about a minute on a CPU; the frames are noise. Two
# segments for a 5 s clip, so Reflection has something to revise.
TINY_RENDER_DEFAULTS = {"short_side": 32, "steps": 2, "segment_frames": 65}
ALL_KINDS = ("mmdit", "vae", "text_encoder", "upscaler")


def demo_files_present(pack_dir: str | os.PathLike = PACK_DIR, kinds=ALL_KINDS) -> bool:
    return all((Path(pack_dir) / "models" / "demo" / DEMO_FILES[k]).exists() for k in kinds)


def make_tiny_models(folder: str | os.PathLike, python: str | None = None, kinds=ALL_KINDS,
                     render_defaults: dict | None = None) -> dict[str, Path]:
    """Random-weight tiny model files named like the demo ones (`<folder>/<kind>.safetensors`).

    MMDiT, VAE and text encoder are made with the CLI (`python -m omnihuman_core init`, the command
    users run); the upscaler, which the CLI does not make, with `omnihuman_core.upscale`. The MMDiT
    gets `render_defaults` in its metadata so "from model" settings render small.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    python = python or sys.executable
    made = {}
    for kind in kinds:
        out = folder / DEMO_FILES[kind]
        if kind == "upscaler":
            code = ("import sys; from omnihuman_core.upscale import Upscaler, save_upscaler; "
                    "save_upscaler(sys.argv[1], Upscaler.from_config('sr-tiny'))")
            subprocess.run([python, "-c", code, str(out)], cwd=PACK_DIR, check=True, capture_output=True)
        else:
            cmd = [python, "-m", "omnihuman_core", "init", "--kind", kind, "--preset", "tiny", "--out", str(out)]
            if kind == "mmdit":
                cmd[-2:-2] = ["--audio-dim", "400"]  # the built-in mel front end: 80 bins x 5 frames of context
            subprocess.run(cmd, cwd=PACK_DIR, check=True, capture_output=True)
        made[kind] = out
    if "mmdit" in made:
        set_render_defaults(made["mmdit"], render_defaults if render_defaults is not None else TINY_RENDER_DEFAULTS)
    return made


def set_render_defaults(path: str | os.PathLike, render_defaults: dict) -> None:
    """Rewrite a model file's `render_defaults` metadata (what the trainer's export records)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["render_defaults"] = json.dumps(render_defaults, sort_keys=True)
    tmp = Path(str(path) + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def copy_inputs(base_dir: str | os.PathLike, files: dict[str, str | os.PathLike]) -> None:
    """Copy files into the server's input/ folder under the given names."""
    for name, src in files.items():
        shutil.copyfile(src, Path(base_dir) / "input" / name)


# ---- the pack as ComfyUI imports it --------------------------------------------------------------

def load_pack(pack_dir: str | os.PathLike = PACK_DIR, module_name: str = "omnihuman_pack"):
    """Import the pack's __init__ as a package, the way ComfyUI's loader does (no ComfyUI needed)."""
    import importlib.util

    if module_name in sys.modules:
        return sys.modules[module_name]
    pack_dir = Path(pack_dir)
    spec = importlib.util.spec_from_file_location(module_name, pack_dir / "__init__.py",
                                                  submodule_search_locations=[str(pack_dir)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
