"""Audio encoders: 16 kHz waveform -> feature sequence at 50 Hz.

Shared convention (what `frames.frame_features` relies on): feature `i` describes the audio centred
at time `i / feature_rate`, and a waveform of `N` samples gives `1 + N // 320` features. Keeping all
encoders on one grid lets models and tests swap them without touching the frame alignment.

transformers is imported lazily, inside the encoders that need it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from .io import SAMPLE_RATE

HOP = 320  # samples per feature at 16 kHz -> 50 Hz, the rate of wav2vec2 and Whisper encoders
FEATURE_RATE = SAMPLE_RATE / HOP
CHUNK_SECONDS = 30.0  # transformer encoders run on windows this long (Whisper's fixed window)
CONTEXT_SECONDS = 1.0  # audio overlapping each side of a window, so chunk seams have context

WAV2VEC2_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")  # share Wav2Vec2FeatureExtractor
WHISPER_TYPES = ("whisper",)


def _as_waveform(waveform, who: str) -> torch.Tensor:
    """Validate an encoder input: finite, non-empty, mono `[N]` (a `[1, N]` is squeezed)."""
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    if not isinstance(waveform, torch.Tensor):
        raise InputError(f"{who}.encode needs a torch tensor [N], got {type(waveform).__name__}")
    if waveform.dim() == 2 and waveform.shape[0] == 1:
        waveform = waveform[0]
    if waveform.dim() != 1:
        raise InputError(
            f"{who}.encode needs a mono waveform [N] at {SAMPLE_RATE} Hz, got shape "
            f"{tuple(waveform.shape)}; load it with omnihuman_core.audio.load_audio"
        )
    if waveform.numel() == 0:
        raise InputError(f"{who}.encode got an empty waveform (0 samples)")
    waveform = waveform.detach().float()
    if not torch.isfinite(waveform).all():
        raise InputError(f"{who}.encode got NaN/inf samples; the audio is damaged")
    return waveform


def n_features(n_samples: int) -> int:
    """Number of features every encoder returns for `n_samples` samples at 16 kHz."""
    return 1 + n_samples // HOP


class AudioEncoder:
    """Interface: `feature_rate` (Hz), `dim`, `encode(waveform_16k [N]) -> [n_features(N), dim]`.

    Output is on the encoder's device in its dtype.
    """

    name: str = "audio"
    feature_rate: float = FEATURE_RATE
    dim: int

    def __init__(self, device=None, dtype=None):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype or torch.float32

    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.encode(waveform)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, feature_rate={self.feature_rate:g} Hz)"


class MelEncoder(AudioEncoder):
    """Weightless log-mel front end (80 mels, 25 ms window, 20 ms hop -> 50 Hz).

    Log10 power with a floor 80 dB below the utterance's loudest bin (so digital silence does not
    produce -inf outliers), then per-utterance normalisation to zero mean and unit variance over
    all bins and frames: recording gain drops out while the spectral shape is kept. Because the
    statistics are per utterance, encode the whole clip once and slice, not segment by segment.
    """

    name = "mel"

    def __init__(self, n_mels: int = 80, n_fft: int = 400, hop_length: int = HOP,
                 floor_db: float = 80.0, device=None, dtype=None):
        super().__init__(device, dtype)
        if hop_length != HOP:
            raise InputError(f"MelEncoder: hop_length must be {HOP} (50 Hz grid), got {hop_length}")
        self.dim = n_mels
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.floor_db = floor_db
        self._mel = None

    def _transform(self):
        if self._mel is None:
            import torchaudio

            self._mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=SAMPLE_RATE, n_fft=self.n_fft, win_length=self.n_fft,
                hop_length=self.hop_length, n_mels=self.dim, f_min=0.0, f_max=SAMPLE_RATE / 2,
                power=2.0, center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney",
            ).to(self.device)
        return self._mel

    @torch.inference_mode()
    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        wave = _as_waveform(waveform, "MelEncoder")
        if wave.numel() <= self.n_fft // 2:
            # Reflect padding needs more samples than half a window; zeros are silence anyway.
            wave = torch.nn.functional.pad(wave, (0, self.n_fft // 2 + 1 - wave.numel()))
        # STFT in float32 on purpose: half-precision FFTs are unsupported on CPU and lossy.
        mel = self._transform()(wave.to(self.device, torch.float32))  # [n_mels, frames]
        logmel = torch.log10(mel.clamp_min(1e-10))
        logmel = torch.maximum(logmel, logmel.max() - self.floor_db / 10.0)
        logmel = (logmel - logmel.mean()) / (logmel.std(unbiased=False) + 1e-5)
        return logmel.t()[: n_features(waveform.shape[-1])].to(self.dtype).contiguous()


def _select_layers(hidden_states, last, layers) -> torch.Tensor:
    """`"last"`: final output; `"all"`: mean over every transformer layer's output; int: that one."""
    if layers == "last":
        return last
    if layers == "all":
        # hidden_states[0] is the input embedding; average the layer outputs, as Hallo/EchoMimic stack.
        return torch.stack(hidden_states[1:], 0).float().mean(0).to(last.dtype)
    return hidden_states[layers]


def _check_layers(layers, n_layers: int, who: str):
    if layers in ("all", "last"):
        return layers
    if isinstance(layers, int) and not isinstance(layers, bool) and -(n_layers + 1) <= layers <= n_layers:
        return layers
    raise InputError(
        f"{who}: layers must be 'all', 'last' or an int in -{n_layers + 1}..{n_layers} "
        f"(0 = embeddings, {n_layers} = last layer), got {layers!r}"
    )


def _chunks(n: int, window: int, context: int):
    """Cover [0, n) with windows of <= `window` samples: yields (in_start, in_end, keep_start, keep_end).

    Each window keeps its central part; `context` samples each side are seen but not kept, so
    features near a seam are computed with audio on both sides. All values are multiples of HOP.
    """
    if n <= window:
        yield 0, n, 0, n
        return
    if window - 2 * context < HOP:
        raise ValueError(f"chunk window {window} leaves nothing to keep after {context} context each side")
    keep = 0
    while keep < n:
        in_start = max(0, keep - context)
        in_end = min(n, in_start + window)
        keep_end = n if in_end == n else in_end - context
        yield in_start, in_end, keep, keep_end
        keep = keep_end


class _ChunkedTransformerEncoder(AudioEncoder):
    """Shared chunking for transformer encoders: bounded attention cost on long audio."""

    window_samples: int = int(CHUNK_SECONDS * SAMPLE_RATE)
    context_samples: int = int(CONTEXT_SECONDS * SAMPLE_RATE)

    def _encode_region(self, wave: torch.Tensor) -> torch.Tensor:
        """[L] float32 CPU -> [>= ~1 + L // HOP, dim]; feature i centred at sample i * HOP."""
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        wave = _as_waveform(waveform, type(self).__name__).cpu()
        n = wave.numel()
        total = n_features(n)
        out = []
        for in_start, in_end, keep_start, keep_end in _chunks(n, self.window_samples, self.context_samples):
            feats = self._encode_region(wave[in_start:in_end])
            first = (keep_start - in_start) // HOP
            count = (keep_end - keep_start) // HOP if keep_end < n else total - keep_start // HOP
            piece = feats[first:first + count]
            if piece.shape[0] < count:  # the encoder stops a frame short at the very end: hold it
                piece = torch.cat([piece, piece[-1:].expand(count - piece.shape[0], -1)], 0)
            out.append(piece)
        return torch.cat(out, 0).to(self.dtype).contiguous()


def _check_folder(folder, kind: str) -> tuple[Path, dict]:
    path = Path(folder)
    hint = (f"give a local folder holding a {kind} checkpoint (config.json, preprocessor_config.json "
            f"and model.safetensors, as saved by transformers' save_pretrained)")
    if not path.is_dir():
        raise InputError(f"audio encoder folder '{path}' does not exist; {hint}")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise InputError(f"audio encoder folder '{path}' has no config.json; {hint}")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"audio encoder folder '{path}': config.json is not valid JSON ({e})") from None
    weights = [p for p in path.iterdir() if p.suffix == ".safetensors" or p.name in (
        "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")]
    if not weights:
        raise InputError(f"audio encoder folder '{path}' has no weights (model.safetensors); {hint}")
    return path, config


class Wav2Vec2Encoder(_ChunkedTransformerEncoder):
    """wav2vec2-family encoder (also HuBERT / WavLM) from a local folder; 50 Hz hidden states.

    `layers`: "all" (mean of every transformer layer's output, the usual choice for lip sync),
    "last", or an int index into the hidden states (0 = embeddings).
    """

    name = "wav2vec2"

    def __init__(self, folder, layers="all", device=None, dtype=None):
        super().__init__(device, dtype)
        path, config = _check_folder(folder, "wav2vec2")
        if config.get("model_type") not in WAV2VEC2_TYPES:
            raise InputError(
                f"'{path}' holds a '{config.get('model_type')}' model, not one of {WAV2VEC2_TYPES}; "
                f"use WhisperEncoder / load_audio_encoder for other kinds"
            )
        from transformers import AutoModel, Wav2Vec2FeatureExtractor

        self.layers = _check_layers(layers, int(config.get("num_hidden_layers", 0)), "Wav2Vec2Encoder")
        if (path / "preprocessor_config.json").is_file():
            self.extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(path), local_files_only=True)
        else:  # some checkpoints ship without one; these are wav2vec2's documented defaults
            self.extractor = Wav2Vec2FeatureExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        self.model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        self.folder = str(path)

    def _encode_region(self, wave):
        values = self.extractor(wave.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_values
        # The conv stack has a 400-sample receptive field and a 320 hop: padding 200 zeros (the
        # normalised mean) each side centres output i on sample i * 320 and yields 1 + L // 320 frames.
        values = torch.nn.functional.pad(values, (200, 200))
        values = values.to(self.device, self.dtype)
        out = self.model(values, output_hidden_states=self.layers != "last")
        return _select_layers(out.hidden_states, out.last_hidden_state, self.layers)[0]


class WhisperEncoder(_ChunkedTransformerEncoder):
    """Whisper encoder from a local folder; 50 Hz.

    Whisper's extractor pads or truncates to a fixed 30 s window, so long audio is encoded in
    windows (with overlap for context) and only the frames of real audio are kept and concatenated.
    """

    name = "whisper"

    def __init__(self, folder, layers="last", device=None, dtype=None):
        super().__init__(device, dtype)
        path, config = _check_folder(folder, "whisper")
        if config.get("model_type") not in WHISPER_TYPES:
            raise InputError(
                f"'{path}' holds a '{config.get('model_type')}' model, not whisper; use "
                f"Wav2Vec2Encoder / load_audio_encoder for other kinds"
            )
        from transformers import WhisperFeatureExtractor, WhisperModel

        self.layers = _check_layers(layers, int(config.get("encoder_layers", 0)), "WhisperEncoder")
        if (path / "preprocessor_config.json").is_file():
            self.extractor = WhisperFeatureExtractor.from_pretrained(str(path), local_files_only=True)
        else:
            self.extractor = WhisperFeatureExtractor(feature_size=int(config.get("num_mel_bins", 80)))
        model = WhisperModel.from_pretrained(str(path), local_files_only=True)
        self.model = model.get_encoder()  # the decoder is never used; let it be freed
        del model
        self.model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.dim = int(self.model.config.d_model)
        self.folder = str(path)

        window = int(self.extractor.n_samples)
        positions = int(self.model.config.max_source_positions)
        if window % positions or window // positions != HOP:
            raise InputError(
                f"'{path}': Whisper window of {window} samples over {positions} positions is not the "
                f"50 Hz grid ({HOP} samples per frame); this checkpoint's extractor config is unusual"
            )
        self.window_samples = window
        # Context: 1 s, but never more than 1/8 of the window (tiny test models use short windows).
        self.context_samples = min(self.context_samples, window // 8) // HOP * HOP

    def _encode_region(self, wave):
        features = self.extractor(wave.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        features = features.to(self.device, self.dtype)
        out = self.model(features, output_hidden_states=self.layers != "last")
        feats = _select_layers(out.hidden_states, out.last_hidden_state, self.layers)[0]
        return feats[: n_features(wave.numel())]  # the rest of the 30 s window is padding


def load_audio_encoder(spec, device=None, dtype=None, layers=None) -> AudioEncoder:
    """`"mel"` -> MelEncoder; a local folder -> Wav2Vec2Encoder or WhisperEncoder by its config.json."""
    if isinstance(spec, AudioEncoder):
        return spec
    if not isinstance(spec, (str, Path)) or not str(spec).strip():
        raise InputError(f"audio encoder must be 'mel' or a local model folder, got {spec!r}")
    if str(spec).strip().lower() == "mel":
        return MelEncoder(device=device, dtype=dtype)
    path, config = _check_folder(spec, "wav2vec2 or whisper")
    kind = config.get("model_type")
    kwargs = {} if layers is None else {"layers": layers}
    if kind in WAV2VEC2_TYPES:
        return Wav2Vec2Encoder(path, device=device, dtype=dtype, **kwargs)
    if kind in WHISPER_TYPES:
        return WhisperEncoder(path, device=device, dtype=dtype, **kwargs)
    raise InputError(
        f"audio encoder folder '{path}' holds a '{kind}' model; supported: 'mel' (built in), "
        f"{', '.join(WAV2VEC2_TYPES + WHISPER_TYPES)} checkpoints"
    )
