"""The LLM client of System 2: any OpenAI-compatible chat-completions endpoint through `openai`.

OpenAI, Ollama, vLLM, LM Studio and llama.cpp's server all speak this protocol. What differs is
what they accept, so the client degrades step by step and remembers it for the session: JSON-schema
response format -> JSON mode -> plain text with JSON extracted; an audio part -> the transcript
already in the text. Every reply is parsed as data (JSON, length-limited) and validated; one repair
request is made for an unusable reply. A disk cache keyed by the model, the prompt versions and
the content of every input makes a repeated run send zero requests.

The API key is read from the environment variable NAMED in the config and lives only inside the
`openai` client object; it is redacted from every message, log line and file this module writes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..errors import InputError, OmniHumanError
from .prompts import load_prompt

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_FORMAT = 1
STRUCTURED_MODES = ("auto", "json_schema", "json_object", "off")
AUDIO_MODES = ("auto", "on", "off")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CONVENTIONAL_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")  # safe to echo back in messages
PLACEHOLDER_KEY = "no-key"  # local servers need none, but the client must send something
MAX_RETRY_AFTER_S = 60.0


class LLMError(OmniHumanError):
    """The LLM endpoint could not produce a usable answer; the message says what to do."""


class LLMUnreachable(LLMError):
    """No connection to the endpoint (wrong URL, server not running, timeout)."""


class LLMRefusal(LLMError):
    """The model declined to answer."""


class LLMCapabilityError(LLMError):
    """The endpoint or model does not accept a kind of input (images, audio)."""


class LLMInvalidReply(LLMError):
    """The model did not return valid JSON even after the repair request; the raw reply is saved."""

    def __init__(self, message: str, raw_path: Path | None = None):
        super().__init__(message)
        self.raw_path = raw_path


def default_cache_dir() -> Path:
    """`$OMNIHUMAN_CACHE_DIR/llm`, else `$XDG_CACHE_HOME/omnihuman/llm`, else `~/.cache/omnihuman/llm`."""
    root = os.environ.get("OMNIHUMAN_CACHE_DIR")
    if root:
        return Path(root) / "llm"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "omnihuman" / "llm"


def display_url(url: str) -> str:
    """The URL without user info or query string (which could hold credentials), for messages."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        if p.port:
            host = f"{host}:{p.port}"
        return urlunsplit((p.scheme, host, p.path, "", ""))
    except ValueError:
        return "<unparsable URL>"


@dataclass
class LLMConfig:
    """Where the LLM is and how to talk to it. Holds the key's variable NAME, never the key."""

    base_url: str
    model: str
    api_key_env: str | None = None  # e.g. "OPENAI_API_KEY"; None for local servers
    timeout: float = 120.0  # seconds per request
    max_retries: int = 3  # extra attempts after 429 / 5xx / timeouts / connection errors
    backoff: float = 1.0  # first retry waits this long, doubling each time
    backoff_max: float = 30.0
    temperature: float = 0.2
    seed: int | None = 0  # servers that support it make replies repeatable
    max_tokens: int | None = 4096
    structured: str = "auto"  # response format: auto (json_schema, then fall back) | json_schema | json_object | off
    vision: bool = True  # send images as image parts (False: describe them in text)
    audio: str = "auto"  # send the audio as an input_audio part: auto (if accepted) | on | off
    max_audio_part_s: float = 120.0  # longer audio goes as transcript + facts only
    image_max_side: int = 1024  # images are downscaled to this before sending
    max_reply_chars: int = 200_000  # longer replies are rejected unread
    cache_dir: Path | None = field(default_factory=default_cache_dir)  # None: no cache
    raw_reply_dir: Path | None = None  # where unusable replies are saved (default: cache_dir/failed)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.base_url).scheme if isinstance(self.base_url, str) else ""
        if scheme not in ("http", "https"):
            raise InputError(
                "--llm-base-url must be an http(s) URL such as http://localhost:11434/v1 (Ollama) or "
                "https://api.openai.com/v1"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError("--llm-model is empty; give the model name the endpoint serves (e.g. gpt-4o, qwen2.5vl)")
        if self.api_key_env is not None and not _ENV_NAME.match(self.api_key_env):
            # Do not echo the value: people paste the key itself here.
            raise InputError(
                "--llm-api-key-env takes the NAME of an environment variable that holds the key (e.g. "
                "OPENAI_API_KEY), not the key itself; export the key in that variable"
            )
        if self.structured not in STRUCTURED_MODES:
            raise InputError(f"structured output mode must be one of {', '.join(STRUCTURED_MODES)}, got {self.structured!r}")
        if self.audio not in AUDIO_MODES:
            raise InputError(f"audio mode must be one of {', '.join(AUDIO_MODES)}, got {self.audio!r}")
        if not self.timeout > 0 or self.max_retries < 0 or self.backoff < 0:
            raise InputError("LLM timeout must be > 0 and retries / backoff >= 0")
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)

    def read_key(self) -> str | None:
        """The key from the named environment variable (None when no variable is named)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            name = self.api_key_env if _CONVENTIONAL_ENV_NAME.match(self.api_key_env) else "named by --llm-api-key-env"
            raise InputError(
                f"the environment variable {name} is not set or empty; export the API key in it "
                "(local servers such as Ollama need no key: leave out --llm-api-key-env)"
            )
        return value


# ------------------------------------------------------------------------------------ content parts


def image_part(image, max_side: int = 1024, quality: int = 90) -> dict:
    """An image (PIL or uint8 [H, W, 3]) as a chat `image_url` part with a JPEG data URL."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    img = img.convert("RGB")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()}}


def audio_part(waveform, sample_rate: int = 16000) -> dict:
    """A mono waveform (float -1..1) as a chat `input_audio` part (16-bit WAV, base64)."""
    import wave

    w = waveform.detach().cpu().float().numpy() if hasattr(waveform, "detach") else np.asarray(waveform, np.float32)
    pcm = (np.clip(w.reshape(-1), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav"}}


_DELIM = re.compile(r"<<<|>>>")


def data_block(name: str, text: str, limit: int) -> str:
    """Untrusted text as a delimited data block; delimiters inside it are defused, length capped."""
    text = _DELIM.sub("<< <", str(text))
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    if len(text) > limit:
        text = text[:limit] + " [...truncated]"
    return f"<<<BEGIN DATA: {name}>>>\n{text}\n<<<END DATA: {name}>>>"


def text_part(text: str) -> dict:
    return {"type": "text", "text": text}


# ----------------------------------------------------------------------------------- JSON replies


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json(text: str, max_chars: int) -> dict:
    """The JSON object in a reply: the whole reply, a fenced block, or the first object in prose."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the reply was empty")
    if len(text) > max_chars:
        raise ValueError(f"the reply is {len(text)} characters long, over the limit of {max_chars}")
    candidates = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    decoder = json.JSONDecoder()
    for c in candidates:
        try:
            value = json.loads(c)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    starts = [m.start() for m in re.finditer(r"\{", text)][:50]
    for s in starts:
        try:
            value, _ = decoder.raw_decode(text, s)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("the reply contains no JSON object" if not starts else "the reply's JSON is not valid")


# ------------------------------------------------------------------------------------------- cache


class DiskCache:
    """Validated LLM answers on disk, one JSON file per request key (which is a hash: no inputs, no key)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @staticmethod
    def key(payload: Any) -> str:
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            record = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("format") == CACHE_FORMAT else None

    def put(self, key: str, record: dict) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": CACHE_FORMAT, **record}, fh, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError as e:  # a read-only cache must not fail the plan
            log.warning("could not write the LLM cache in %s (%s); continuing without caching", self.folder, e.strerror)


# ------------------------------------------------------------------------------------------ client


def _status(e: Exception) -> int | None:
    return getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)


def _retry_after(e: Exception) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if any."""
    headers = getattr(getattr(e, "response", None), "headers", None) or {}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000.0
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except (TypeError, ValueError):
        pass
    return None


def _error_text(e: Exception, limit: int = 300) -> str:
    """The server's error message (body), short."""
    body = getattr(e, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error")
        msg = body.get("message") or (err.get("message") if isinstance(err, dict) else err)
    text = str(msg or getattr(e, "message", None) or e)
    return text[:limit]


def _has_part(messages: list[dict], kind: str) -> bool:
    return any(isinstance(m.get("content"), list) and any(p.get("type") == kind for p in m["content"])
               for m in messages)


def _without_parts(messages: list[dict], kind: str) -> list[dict]:
    out = []
    for m in messages:
        if isinstance(m.get("content"), list):
            m = {**m, "content": [p for p in m["content"] if p.get("type") != kind]}
        out.append(m)
    return out


class LLMClient:
    """Chat completions that return validated JSON, with retries, fallbacks and a disk cache."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep):
        import openai  # lazy: importing the agents package stays cheap

        self.config = config
        self._openai = openai
        self._secret = config.read_key()
        # The key is passed explicitly, so a stray OPENAI_API_KEY is never sent to another server.
        self._client = openai.OpenAI(base_url=config.base_url, api_key=self._secret or PLACEHOLDER_KEY,
                                     timeout=config.timeout, max_retries=0)
        self._sleep = sleep
        self.cache = DiskCache(config.cache_dir) if config.cache_dir is not None else None
        self.url = display_url(config.base_url)
        self.requests = 0  # HTTP requests sent (cache hits send none)
        self.cache_hits = 0
        self._structured = "json_schema" if config.structured == "auto" else config.structured
        self.audio_accepted: bool | None = None if config.audio == "auto" else config.audio == "on"
        # What this endpoint turned out not to accept (learned from 400s, kept for the session).
        self._token_param = "max_tokens"
        self._send_temperature = True
        self._send_seed = True

    # ---- helpers -------------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """Remove the key from any text before it leaves this object."""
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "***")
        return text

    def wants_audio(self, seconds: float) -> bool:
        """Whether to attach the audio as a part: allowed, not yet rejected, not too long."""
        return self.audio_accepted is not False and self.config.audio != "off" and seconds <= self.config.max_audio_part_s

    def check_reachable(self) -> None:
        """Fail fast (before rendering) when nothing answers at the base URL. Any HTTP answer counts."""
        try:
            self.requests += 1
            self._client.models.list(timeout=min(10.0, self.config.timeout))
        except (self._openai.APITimeoutError, self._openai.APIConnectionError) as e:
            raise self._unreachable(e, 1) from None
        except self._openai.APIStatusError:
            pass  # e.g. a server without /models: it answered, so it is there

    def _unreachable(self, e: Exception, attempts: int) -> LLMUnreachable:
        if isinstance(e, self._openai.APITimeoutError):
            return LLMUnreachable(self.redact(
                f"the LLM endpoint at {self.url} did not answer within {self.config.timeout:g} s "
                f"({attempts} attempt(s)); raise --llm-timeout, use a smaller model, or pass --offline "
                "to plan without an LLM"))
        cause = getattr(e, "__cause__", None) or e
        return LLMUnreachable(self.redact(
            f"cannot reach the LLM endpoint at {self.url} ({type(cause).__name__}: {str(cause)[:200]}) after "
            f"{attempts} attempt(s); check that the server is running and the URL is right (it usually "
            "ends in /v1), or pass --offline to plan without an LLM"))

    # ---- one chat request with retries and fallbacks -------------------------------------------------
    def _response_format(self, schema: dict, name: str) -> dict | None:
        if self._structured == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        if self._structured == "json_object":
            return {"type": "json_object"}
        return None

    def _adapt(self, e: Exception, messages: list[dict], has_format: bool) -> list[dict] | None:
        """After a 400: stop sending what the endpoint lacks (and remember it); None = nothing left to try.

        Specific complaints first (parameter names, response_format, audio, images); an unexplained
        400 drops the optional parts in turn: the audio part (the transcript is in the text), then
        the response format (JSON is extracted from the text anyway).
        """
        cfg = self.config
        text = _error_text(e).lower()
        auto_format = has_format and cfg.structured == "auto"
        has_audio = _has_part(messages, "input_audio")

        def drop_audio() -> list[dict]:
            if cfg.audio == "on":
                raise LLMCapabilityError(self.redact(
                    f"the model {cfg.model} at {self.url} does not accept audio input ({_error_text(e)}); "
                    "leave out --llm-audio on: the transcript and audio facts are sent as text")) from None
            self.audio_accepted = False
            log.info("%s did not accept the audio part; sending the transcript and audio facts only", self.url)
            return _without_parts(messages, "input_audio")

        def step_down_format() -> list[dict]:
            self._structured = "json_object" if self._structured == "json_schema" else "off"
            log.info("%s did not accept this response_format; using %s", self.url, self._structured)
            return messages

        # Newer OpenAI models take max_completion_tokens and only the default temperature.
        if "max_tokens" in text and self._token_param == "max_tokens" and cfg.max_tokens:
            self._token_param = "max_completion_tokens"
            return messages
        if "temperature" in text and self._send_temperature:
            self._send_temperature = False
            return messages
        if re.search(r"\bseed\b", text) and self._send_seed and cfg.seed is not None:
            self._send_seed = False
            return messages
        if auto_format and re.search(r"response_format|json_schema|schema|structured|json_object|grammar", text):
            return step_down_format()
        if has_audio and re.search(r"audio|modalit|content type|content part", text):
            return drop_audio()
        if _has_part(messages, "image_url") and re.search(r"image|vision|multimodal|modalit|content type|content part", text):
            raise LLMCapabilityError(self.redact(
                f"the model {cfg.model} at {self.url} does not accept images ({_error_text(e)}); use a vision "
                "model (e.g. gpt-4o, qwen2.5vl, llava, gemma3) or pass --llm-no-vision (with --caption to "
                "describe the image)")) from None
        if has_audio and cfg.audio == "auto":
            return drop_audio()
        if auto_format and self._structured != "off":
            return step_down_format()
        return None

    def chat(self, messages: list[dict], *, schema: dict, name: str) -> str:
        """Send one conversation; returns the reply text. Retries transient errors with backoff."""
        cfg, oa = self.config, self._openai
        attempt = 0
        if self.audio_accepted is False:
            messages = _without_parts(messages, "input_audio")
        while True:
            kwargs: dict[str, Any] = {"model": cfg.model, "messages": messages}
            if self._send_temperature:
                kwargs["temperature"] = cfg.temperature
            if cfg.seed is not None and self._send_seed:
                kwargs["seed"] = cfg.seed
            if cfg.max_tokens:
                kwargs[self._token_param] = cfg.max_tokens
            fmt = self._response_format(schema, name)
            if fmt is not None:
                kwargs["response_format"] = fmt
            self.requests += 1
            try:
                resp = self._client.chat.completions.create(**kwargs)
            except (oa.BadRequestError, oa.UnprocessableEntityError) as e:
                adapted = self._adapt(e, messages, fmt is not None)
                if adapted is None:
                    raise LLMError(self.redact(
                        f"the LLM endpoint at {self.url} rejected the request ({_status(e)}): {_error_text(e)}")) from None
                messages = adapted
                continue
            except (oa.AuthenticationError, oa.PermissionDeniedError) as e:
                hint = ("set the key in the environment variable named by --llm-api-key-env" if cfg.api_key_env is None
                        else "check the key in the environment variable named by --llm-api-key-env")
                raise LLMError(self.redact(
                    f"the LLM endpoint at {self.url} refused access ({_status(e)}: {_error_text(e)}); {hint}")) from None
            except oa.NotFoundError as e:
                raise LLMError(self.redact(
                    f"the LLM endpoint at {self.url} answered 404 ({_error_text(e)}): check --llm-model "
                    f"({cfg.model}) and that --llm-base-url ends where the API starts (usually /v1)")) from None
            except (oa.APITimeoutError, oa.APIConnectionError, oa.APIStatusError) as e:
                status = _status(e)
                transient = isinstance(e, (oa.APITimeoutError, oa.APIConnectionError)) or status in (408, 409, 429) or (
                    status is not None and status >= 500)
                if not transient:
                    raise LLMError(self.redact(
                        f"the LLM endpoint at {self.url} answered {status}: {_error_text(e)}")) from None
                if attempt >= cfg.max_retries:
                    if isinstance(e, (oa.APITimeoutError, oa.APIConnectionError)):
                        raise self._unreachable(e, attempt + 1) from None
                    raise LLMError(self.redact(
                        f"the LLM endpoint at {self.url} kept failing ({status}: {_error_text(e)}) after "
                        f"{attempt + 1} attempt(s); try again later or raise --llm-retries")) from None
                wait = min(cfg.backoff_max, cfg.backoff * (2 ** attempt))
                asked = _retry_after(e)
                if asked is not None:
                    wait = min(max(wait, asked), MAX_RETRY_AFTER_S)
                log.warning("LLM request to %s failed (%s); retrying in %.1f s", self.url, status or type(e).__name__, wait)
                self._sleep(wait)
                attempt += 1
                continue
            except oa.APIError as e:  # a reply that is not a chat completion at all
                raise LLMError(self.redact(
                    f"unexpected answer from {self.url} ({type(e).__name__}: {str(e)[:200]}); is it an "
                    "OpenAI-compatible endpoint (the base URL usually ends in /v1)?")) from None
            try:
                text = self._reply_text(resp)
            except (AttributeError, TypeError, IndexError, KeyError):  # a malformed completion object
                raise LLMError(f"unexpected answer from {self.url}: not a chat completion; is it an "
                               "OpenAI-compatible endpoint (the base URL usually ends in /v1)?") from None
            # A hostile server could echo the key into the reply, which ends up in caches and schedules.
            return self.redact(text)

    def _reply_text(self, resp: Any) -> str:
        choices = getattr(resp, "choices", None)
        if not choices:
            if isinstance(resp, str):
                raise LLMError(f"the answer from {self.url} is not a chat completion; is the base URL right "
                               "(it usually ends in /v1)?")
            raise LLMError(f"the LLM endpoint at {self.url} returned no choices")
        choice = choices[0]
        msg = choice.message
        refusal = getattr(msg, "refusal", None)
        if refusal:
            raise LLMRefusal(self.redact(f"the model {self.config.model} refused: {str(refusal)[:300]}"))
        content = msg.content
        if not content and choice.finish_reason == "content_filter":
            raise LLMRefusal(f"the model {self.config.model} refused (content filter)")
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        return content or ""

    # ---- the one entry point the agents use ----------------------------------------------------------
    def complete_json(
        self, *, name: str, prompt_version: str, messages: list[dict], schema: dict,
        check: Callable[[dict], T],
    ) -> T:
        """Ask for one JSON object, validate it with `check` (raises ValueError/InputError with a
        reason); one repair request on failure; cached by every input."""
        cfg = self.config
        key = DiskCache.key({"model": cfg.model, "base_url": cfg.base_url, "name": name, "prompt_version": prompt_version,
                             "messages": messages, "schema": schema, "temperature": cfg.temperature,
                             "seed": cfg.seed, "max_tokens": cfg.max_tokens})
        if self.cache is not None:
            record = self.cache.get(key)
            if record is not None:
                try:
                    result = check(record["data"])
                    self.cache_hits += 1
                    return result
                except (ValueError, KeyError, TypeError):
                    log.info("cached %s answer no longer validates; asking again", name)

        reply = self.chat(messages, schema=schema, name=name)
        data, problem = self._parse(reply, check)
        replies = [reply]
        if problem is not None:
            repair = load_prompt("repair").render(problem=problem[:2000])
            messages2 = messages + [{"role": "assistant", "content": reply[:cfg.max_reply_chars]},
                                    {"role": "user", "content": repair}]
            reply2 = self.chat(messages2, schema=schema, name=name)
            replies.append(reply2)
            data, problem2 = self._parse(reply2, check)
            if problem2 is not None:
                path = self._save_raw(name, replies, [problem, problem2])
                where = f"; the raw replies are saved in {path}" if path else ""
                raise LLMInvalidReply(self.redact(
                    f"the model {cfg.model} at {self.url} did not return a valid {name} answer ({problem2[:300]}), "
                    f"also after a repair request{where}. Try a stronger model, --llm-structured json_schema "
                    "if the server supports it, or --offline"), path)
        result, raw = data
        if self.cache is not None:
            self.cache.put(key, {"name": name, "prompt_version": prompt_version, "model": cfg.model, "data": raw})
        return result

    def _parse(self, reply: str, check: Callable[[dict], T]) -> tuple[Any, str | None]:
        try:
            raw = extract_json(reply, self.config.max_reply_chars)
        except ValueError as e:
            return None, str(e)
        try:
            return (check(raw), raw), None
        except (ValueError, TypeError, KeyError) as e:
            return None, f"the JSON does not match the schema: {e}"

    def _save_raw(self, name: str, replies: list[str], problems: list[str]) -> Path | None:
        folder = self.config.raw_reply_dir or (self.config.cache_dir / "failed" if self.config.cache_dir else
                                               Path(tempfile.gettempdir()) / "omnihuman-llm-failed")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"llm-reply-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
            parts = []
            for i, (r, p) in enumerate(zip(replies, problems)):
                parts.append(f"=== reply {i + 1} (model {self.config.model}); problem: {p}\n{r}\n")
            path.write_text(self.redact("\n".join(parts)), encoding="utf-8")
            return path
        except OSError:
            return None
