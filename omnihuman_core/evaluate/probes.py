"""Probe networks: read what a frame shows (mouth, head, hands, face, identity) and what a clip does (action).

Two small networks trained on ground-truth renders of the synthetic world (docs/SYNTH.md) and shipped in
one safetensors file (`models/probes/probes.safetensors`):

- `FrameProbe`: a per-frame CNN on 128x128 frames (any frame size is centre-cropped to a square and
  resized) with a linear read-out for every quantity in `HEADS`, then a second CNN on a crop around the
  head it found that re-reads the face (`FACE_HEADS`). Targets are standardised with the training set's
  mean / std (kept as buffers), so every head trains on the same scale. The identity head
  regresses the synthetic `identity_vector` (68 attributes: kind, colours, shapes, backdrop); its
  standardised output is the identity embedding, and identity similarity is the cosine of two embeddings.
  Regressing attributes rather than learning a contrastive code over the ~180 training characters
  generalises to characters it never saw: a new character is a new combination of known attributes.
- `ActionProbe`: a dilated temporal convolution over the per-frame read-outs (`action_features`) giving
  per-frame logits over `synth.ACTIONS`. It sees each feature both as read and minus its median over the
  clip, so it can tell a smile *action* (a change) from a happy *face* (a clip-long baseline).

`Probes` bundles both; `Probes.read(frames)` -> `Readout`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError, WeightsError
from ..synth.character import IDENTITY_DIM
from ..synth.vocab import ACTIONS

PROBE_KIND = "probes"
PROBE_SIZE = 128
MIN_FRAME_SIDE = 32  # smaller frames carry too little to read a mouth from

# Per-frame read-outs: name -> width. Coordinates are normalised to the (square, cropped) frame: x / width,
# y / height, so they do not depend on the video's resolution. head_pose is in degrees (docs/SYNTH.md).
HEADS = (
    ("mouth", 1), ("head_pose", 3), ("head_center", 2), ("head_radius", 1), ("hands", 4), ("hands_visible", 2),
    ("smile", 1), ("brows", 2), ("eyes_open", 1), ("lean", 1), ("identity", IDENTITY_DIM),
)
LOGIT_HEADS = ("hands_visible",)  # binary logits, not standardised regressions
FACE_HEADS = ("mouth", "head_pose", "smile", "brows", "eyes_open")  # re-read from a crop around the head
N_ACTION_FEATURES = 18


@dataclass
class ProbeConfig:
    size: int = PROBE_SIZE
    channels: tuple = (24, 32, 48, 64, 96)  # one stride-2 stage each: 128 -> 4x4
    hidden: int = 192
    face_size: int = 48  # the head crop, about native resolution at 128 px
    face_scale: float = 1.15  # crop half-width in head radii (half-heights): the face at about native size
    face_channels: tuple = (24, 48, 64, 96)  # 48 -> 3x3
    face_hidden: int = 128
    identity_dim: int = IDENTITY_DIM
    action_width: int = 64
    action_dilations: tuple = (1, 2, 4, 8)  # kernel 5: receptive field 61 frames (2.5 s at 24 fps)
    actions: tuple = ACTIONS

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        self.face_channels = tuple(int(c) for c in self.face_channels)
        self.action_dilations = tuple(int(d) for d in self.action_dilations)
        self.actions = tuple(self.actions)
        if self.size % (2 ** len(self.channels)) or self.face_size % (2 ** len(self.face_channels)):
            raise InputError(f"probe size {self.size} / face size {self.face_size} must be multiples of "
                             f"{2 ** len(self.channels)} / {2 ** len(self.face_channels)}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ProbeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise WeightsError(f"probe config has unknown fields {unknown}; the file was written by a newer version")
        return cls(**d)

    def head_slices(self) -> dict[str, slice]:
        out, i = {}, 0
        for name, width in HEADS:
            width = self.identity_dim if name == "identity" else width
            out[name] = slice(i, i + width)
            i += width
        return out

    @property
    def n_outputs(self) -> int:
        return sum(s.stop - s.start for s in self.head_slices().values())

    def face_indices(self) -> list[int]:
        """Output columns the face crop predicts, in order."""
        s = self.head_slices()
        return [i for name in FACE_HEADS for i in range(s[name].start, s[name].stop)]

    @property
    def n_face_outputs(self) -> int:
        return len(self.face_indices())


def _stages(c_in: int, channels, first_double: bool, kw: dict) -> tuple[nn.Sequential, int]:
    """Stride-2 conv stages (conv, BN, ReLU, then a second stride-1 conv except in the first stage when
    `first_double` is False: at full resolution it would cost more than all later stages together)."""
    layers: list[nn.Module] = []
    for i, c in enumerate(channels):
        layers += [nn.Conv2d(c_in, c, 3, 2, 1, bias=False, **kw), nn.BatchNorm2d(c, **kw), nn.ReLU(inplace=True)]
        if i > 0 or first_double:
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False, **kw), nn.BatchNorm2d(c, **kw), nn.ReLU(inplace=True)]
        c_in = c
    return nn.Sequential(*layers), c_in


class FrameProbe(nn.Module):
    """Per-frame CNN: [N, 3, S, S] in -1..1 -> [N, n_outputs] (standardised targets; logits for LOGIT_HEADS).

    Two stages: the whole frame gives every head (and where the head is); then a crop around the head,
    `face_size` px wide, re-reads the face heads (`FACE_HEADS`): a smile or a mouth opening is a few
    pixels of a 128 px frame, too little to survive the whole-frame trunk's downsampling.
    """

    def __init__(self, config: ProbeConfig, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.config = config
        # RGB + x / y coordinate planes: hands and head are read as positions.
        self.trunk, c = _stages(5, config.channels, False, kw)
        grid = config.size // 2 ** len(config.channels)
        # Flatten, not global pooling: pooling would throw away where things are.
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * grid * grid, config.hidden, **kw), nn.ReLU(inplace=True))
        self.out = nn.Linear(config.hidden, config.n_outputs, **kw)
        self.face_trunk, fc_ = _stages(3, config.face_channels, True, kw)
        fgrid = config.face_size // 2 ** len(config.face_channels)
        self.face_fc = nn.Sequential(nn.Flatten(), nn.Linear(fc_ * fgrid * fgrid, config.face_hidden, **kw),
                                     nn.ReLU(inplace=True))
        self.face_out = nn.Linear(config.face_hidden, config.n_face_outputs, **kw)
        self.register_buffer("target_mean", torch.zeros(config.n_outputs, **kw))
        self.register_buffer("target_std", torch.ones(config.n_outputs, **kw))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """[N, hidden] whole-frame features (before the read-out layer)."""
        n, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        return self.fc(self.trunk(torch.cat([x, xs, ys], 1)))

    def whole(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))

    def head_box(self, raw: torch.Tensor) -> torch.Tensor:
        """[N, 3] head centre x, y and radius (normalised) from whole-frame raw outputs."""
        s = self.config.head_slices()
        real = raw * self.target_std + self.target_mean
        return torch.cat([real[:, s["head_center"]], real[:, s["head_radius"]]], 1)

    def crop_face(self, x: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Crop [N, 3, face_size, face_size] around box (cx, cy, r), `face_scale` radii each way."""
        n = x.shape[0]
        half = (2 * self.config.face_scale * box[:, 2].clamp(0.03, 0.5)).to(x.dtype)
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = half
        theta[:, 1, 1] = half
        theta[:, 0, 2] = (2 * box[:, 0] - 1).to(x.dtype)
        theta[:, 1, 2] = (2 * box[:, 1] - 1).to(x.dtype)
        fs = self.config.face_size
        grid = F.affine_grid(theta, [n, 3, fs, fs], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def face_hidden(self, crop: torch.Tensor) -> torch.Tensor:
        """[N, face_hidden] features of the face crop (before its read-out layer)."""
        return self.face_fc(self.face_trunk(crop))

    def forward(self, x: torch.Tensor, box: torch.Tensor | None = None) -> torch.Tensor:
        """-> [N, n_outputs]: whole-frame outputs with the face heads replaced by the face crop's.

        `box` (training): the head box to crop; None: the box the whole-frame heads read.
        """
        return self.forward_with_features(x, box)[0]

    def forward_with_features(self, x: torch.Tensor, box: torch.Tensor | None = None) \
            -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs as `forward`, [N, hidden + face_hidden] hidden features of the frame and its face crop):
        the features the Frechet probe distance compares (metrics.frechet_distance)."""
        hidden = self.hidden(x)
        raw = self.out(hidden)
        if box is None:
            box = self.head_box(raw.detach())
        face_hidden = self.face_hidden(self.crop_face(x, box))
        return self.merge(raw, self.face_out(face_hidden)), torch.cat([hidden, face_hidden], 1)

    def merge(self, raw: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        cols = list(raw.unbind(1))
        for j, i in enumerate(self.config.face_indices()):
            cols[i] = face[:, j]
        return torch.stack(cols, 1)

    def decode(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs -> named quantities in their own units (visibility as probability, identity standardised)."""
        slices = self.config.head_slices()
        real = raw * self.target_std + self.target_mean
        out = {}
        for name, s in slices.items():
            if name in LOGIT_HEADS:
                out[name] = torch.sigmoid(raw[:, s])
            elif name == "identity":
                out[name] = raw[:, s]  # the embedding: standardised attributes
            else:
                out[name] = real[:, s]
        return out


class ActionProbe(nn.Module):
    """Temporal classifier: action features [B, T, F] -> per-frame action logits [B, T, A]."""

    def __init__(self, config: ProbeConfig, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.config = config
        w = config.action_width
        self.inp = nn.Conv1d(2 * N_ACTION_FEATURES, w, 1, **kw)
        self.convs = nn.ModuleList(nn.Conv1d(w, w, 5, dilation=d, **kw) for d in config.action_dilations)
        self.cls = nn.Conv1d(w, len(config.actions), 1, **kw)
        self.register_buffer("feature_mean", torch.zeros(N_ACTION_FEATURES, **kw))
        self.register_buffer("feature_std", torch.ones(N_ACTION_FEATURES, **kw))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = (feats - self.feature_mean) / self.feature_std
        base = x.median(dim=1, keepdim=True).values
        x = torch.cat([x, x - base], -1).transpose(1, 2)  # [B, 2F, T]
        h = F.relu(self.inp(x))
        for conv in self.convs:
            pad = 2 * conv.dilation[0]
            h = h + F.relu(conv(F.pad(h, (pad, pad), mode="replicate")))
        return self.cls(h).transpose(1, 2)


def action_features(q: dict) -> np.ndarray:
    """Per-frame features for the action probe from read-outs or labels (normalised units) -> float32 [T, 18].

    Hands are also expressed relative to the head (in head radii), so a wave reads the same at any zoom.
    """
    t = np.asarray(q["mouth"]).reshape(-1).shape[0]
    hc = np.asarray(q["head_center"], np.float32).reshape(t, 2)
    r = np.maximum(np.asarray(q["head_radius"], np.float32).reshape(t), 0.02)
    hands = np.asarray(q["hands"], np.float32).reshape(t, 2, 2)
    rel = (hands - hc[:, None, :]) / r[:, None, None]
    pose = np.asarray(q["head_pose"], np.float32).reshape(t, 3) / 20.0
    brows = np.asarray(q["brows"], np.float32).reshape(t, 2)
    cols = [np.asarray(q["mouth"], np.float32).reshape(t, 1), pose, hc, 5 * r[:, None], rel.reshape(t, 4) / 3,
            np.asarray(q["hands_visible"], np.float32).reshape(t, 2), np.asarray(q["smile"], np.float32).reshape(t, 1),
            brows, np.asarray(q["eyes_open"], np.float32).reshape(t, 1), np.asarray(q["lean"], np.float32).reshape(t, 1)]
    out = np.concatenate(cols, 1).astype(np.float32)
    assert out.shape[1] == N_ACTION_FEATURES
    return out


def label_targets(labels: dict, size: int) -> dict[str, np.ndarray]:
    """A clip's labels.npz -> the probe's targets per frame, coordinates normalised by the frame size."""
    t = labels["mouth"].shape[0]
    s = float(size)
    return {
        "mouth": labels["mouth"].astype(np.float32).reshape(t, 1),
        "head_pose": labels["head_pose"].astype(np.float32),
        "head_center": labels["head_center"].astype(np.float32) / s,
        "head_radius": labels["head_radius"].astype(np.float32).reshape(t, 1) / s,
        "hands": labels["hands"].astype(np.float32).reshape(t, 4) / s,
        "hands_visible": labels["hands_visible"].astype(np.float32),
        "smile": labels["smile"].astype(np.float32).reshape(t, 1),
        "brows": labels["brows"].astype(np.float32),
        "eyes_open": labels["eyes_open"].astype(np.float32).reshape(t, 1),
        "lean": labels["lean"].astype(np.float32).reshape(t, 1),
        "identity": np.broadcast_to(labels["identity_vector"].astype(np.float32), (t, IDENTITY_DIM)),
    }


def target_matrix(targets: dict, config: ProbeConfig) -> np.ndarray:
    """Named targets -> [T, n_outputs] in head order."""
    return np.concatenate([np.asarray(targets[name], np.float32).reshape(len(targets["mouth"]), -1)
                           for name, _ in HEADS], 1)


@dataclass
class Readout:
    """What the probes read from T frames. Coordinates are normalised to the frame (0..1, x right, y down)."""

    mouth: np.ndarray  # [T] 0..1
    head_pose: np.ndarray  # [T, 3] yaw, pitch, roll in degrees
    head_center: np.ndarray  # [T, 2]
    head_radius: np.ndarray  # [T]
    hands: np.ndarray  # [T, 2, 2] (x, y); index 0 = the character's left hand
    hands_visible: np.ndarray  # [T, 2] probability
    smile: np.ndarray  # [T]
    brows: np.ndarray  # [T, 2] raise, tilt
    eyes_open: np.ndarray  # [T]
    lean: np.ndarray  # [T]
    identity: np.ndarray  # [T, D] identity embedding
    action_probs: np.ndarray  # [T, A] over ProbeConfig.actions
    # [T, hidden + face_hidden] the frame probe's hidden features (what the Frechet probe distance compares)
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.mouth.shape[0])

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def prepare_frames(frames, size: int = PROBE_SIZE, *, device=None, dtype=None) -> torch.Tensor:
    """uint8 [T, H, W, 3] (numpy or torch) or a PIL image -> float [T, 3, size, size] in -1..1.

    Non-square frames are centre-cropped to a square first (as `media.fit_image` crops a reference
    image to the render size), then resized with antialiasing.
    """
    from PIL import Image

    if isinstance(frames, Image.Image):
        frames = np.asarray(frames.convert("RGB"))[None]
    if not isinstance(frames, torch.Tensor):
        frames = np.asarray(frames)
        if not frames.flags.writeable:  # torch warns on read-only memory (PIL / broadcast views)
            frames = frames.copy()
    x = torch.as_tensor(frames)
    if x.dim() == 3 and x.shape[-1] == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[-1] != 3:
        raise InputError(f"frames must be RGB video [T, H, W, 3], got shape {tuple(x.shape)}")
    t, h, w, _ = x.shape
    if t == 0:
        raise InputError("the video has no frames")
    if min(h, w) < MIN_FRAME_SIDE:
        raise InputError(f"frames are {w}x{h}; the probes need at least {MIN_FRAME_SIDE} px on the short side")
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1.0
    else:
        x = x.float()
        if float(x.min()) < -1e-3 or float(x.max()) > 1.0 + 1e-3:
            raise InputError("float frames must be in 0..1 (or pass uint8 0..255)")
        x = x * 2.0 - 1.0
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top:top + side, left:left + side].permute(0, 3, 1, 2)
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    return x.to(device=device, dtype=dtype or torch.float32).contiguous()


class Probes:
    """The frame probe and the action probe, loaded from (or saved to) one safetensors file."""

    def __init__(self, config: ProbeConfig | None = None, frame: FrameProbe | None = None,
                 action: ActionProbe | None = None, report: dict | None = None, device=None, dtype=None):
        self.config = config or ProbeConfig()
        self.frame = (frame or FrameProbe(self.config, device=device, dtype=dtype)).eval()
        self.action = (action or ActionProbe(self.config, device=device, dtype=dtype)).eval()
        self.report = report or {}
        self.path: Path | None = None

    @property
    def device(self) -> torch.device:
        return self.frame.out.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.frame.out.weight.dtype

    # ---- files ---------------------------------------------------------------------------------------
    def state_dict(self, half: bool = True) -> dict[str, torch.Tensor]:
        out = {}
        for prefix, module in (("frame.", self.frame), ("action.", self.action)):
            params = {n for n, _ in module.named_parameters()}
            for k, v in module.state_dict().items():
                v = v.detach().cpu()
                # Weights in fp16 (the file stays small); statistics and BN buffers keep fp32 precision.
                out[prefix + k] = v.half() if half and k in params and v.is_floating_point() else v.float() \
                    if v.is_floating_point() else v
        return out

    def save(self, path, note: str = "") -> Path:
        import json

        from ..weights import save_safetensors

        extra = {"omnihuman.probe_report": json.dumps(self.report, sort_keys=True)}
        if note:
            extra["omnihuman.note"] = note
        return save_safetensors(path, self.state_dict(), PROBE_KIND, self.config.to_dict(), extra)

    @classmethod
    def load(cls, path, device=None, dtype=None) -> "Probes":
        import json

        from ..weights import load_into, load_safetensors, read_metadata

        p = check_probe_file(path)
        state, config = load_safetensors(p, PROBE_KIND)
        cfg = ProbeConfig.from_dict(config)
        if tuple(cfg.actions) != tuple(ACTIONS[: len(cfg.actions)]):
            raise WeightsError(f"{p}: its action vocabulary {cfg.actions} does not match this pack's synth.ACTIONS")
        probes = cls(cfg, device=device, dtype=dtype)
        load_into(probes.frame, {k[6:]: v for k, v in state.items() if k.startswith("frame.")}, p)
        load_into(probes.action, {k[7:]: v for k, v in state.items() if k.startswith("action.")}, p)
        try:
            probes.report = json.loads(read_metadata(p).get("omnihuman.probe_report", "{}"))
        except ValueError:
            probes.report = {}
        probes.path = p
        return probes

    # ---- reading -------------------------------------------------------------------------------------
    @torch.no_grad()
    def run_prepared(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """Frame probe on prepared input [N, 3, S, S] in -1..1 -> named read-outs (numpy, own units)."""
        raw, features = self.frame.forward_with_features(x.to(self.device, self.dtype))
        dec = self.frame.decode(raw.float())
        out = {k: v.cpu().numpy().astype(np.float32) for k, v in dec.items()}
        out["features"] = features.float().cpu().numpy()
        n = x.shape[0]
        out["mouth"] = np.clip(out["mouth"].reshape(n), 0.0, 1.0)
        out["head_radius"] = out["head_radius"].reshape(n)
        out["hands"] = out["hands"].reshape(n, 2, 2)
        for k in ("smile", "eyes_open", "lean"):
            out[k] = out[k].reshape(n)
        return out

    def read_frames(self, frames, batch: int = 128) -> dict[str, np.ndarray]:
        """Per-frame read-outs (no action) of uint8 frames [T, H, W, 3] or one PIL image."""
        from PIL import Image

        if isinstance(frames, Image.Image):
            return self.run_prepared(prepare_frames(frames, self.config.size))
        if not isinstance(frames, torch.Tensor):
            frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        prepare_frames(frames[:1], self.config.size)  # shape / size errors before any work
        parts = [self.run_prepared(prepare_frames(frames[i:i + batch], self.config.size))
                 for i in range(0, len(frames), batch)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    @torch.no_grad()
    def classify_actions(self, per_frame: dict) -> np.ndarray:
        """Per-frame action probabilities [T, A] from per-frame read-outs (or labels in the same units)."""
        feats = torch.from_numpy(action_features(per_frame))[None].to(self.device, self.dtype)
        return torch.softmax(self.action(feats).float(), -1)[0].cpu().numpy()

    def read(self, frames, batch: int = 128) -> Readout:
        """Everything the probes read from a video: uint8 [T, H, W, 3] (any size; see `prepare_frames`)."""
        per_frame = self.read_frames(frames, batch)
        return Readout(**per_frame, action_probs=self.classify_actions(per_frame))

    def embed(self, image) -> np.ndarray:
        """Identity embedding [D] of one image (PIL, or uint8 [H, W, 3])."""
        return self.read_frames(image)["identity"][0]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis (0 where a vector is zero)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)


def probes_path_default() -> Path:
    """models/probes/probes.safetensors of this checkout."""
    return Path(__file__).resolve().parents[2] / "models" / "probes" / "probes.safetensors"


def check_probe_file(path: str | os.PathLike | None) -> Path:
    p = Path(path) if path is not None else probes_path_default()
    if not p.exists():
        raise InputError(
            f"probe weights {p} do not exist. The pack ships them as models/probes/probes.safetensors; "
            "or train them: python -m omnihuman_core evaluate train-probes --data DATA "
            "--out models/probes/probes.safetensors --minutes 10")
    return p
