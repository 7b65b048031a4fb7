"""The model input of one segment: frames to generate, clean first (motion) frames, the reference.

Temporal layout (latent frames, all on the video's RoPE time axis):

    positions 0 .. m-1        clean motion latents (mask 1), pinned: the start of the segment
    positions m .. t-1        frames to generate (mask 0)
    one extra frame, appended after the t generated frames in the tensor, by `reference_mode`:
      "pseudo_last_frame"     the reference image at position (t - 1) + delta (the paper's method):
                              a clean "future" frame the clip moves towards but never has to reach
      "reference"             the reference at position 0, sharing the first frame's position as
                              in reference-attention models (the paper's "with reference image"
                              ablation): identity without a temporal target
      "none"                  nothing extra (the "without reference and pseudo frame" ablation)

The extra frame always sits at the END of the tensor, so the audio tokens (which cover the first
t frames) line up with the generated frames, and `output` drops it by slicing.
The mask is the last channel of the model input (docs/CONTRACTS.md, model/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError

REFERENCE_MODES = ("pseudo_last_frame", "reference", "none")

# Distance, in latent frames, between the last generated frame and the pseudo last frame.
# 4 latent frames = 16 video frames = 0.67 s at 24 fps past the clip's end:
# - far enough that the clip is not forced to END on the reference pose (at delta = 1, HuMo-style,
#   the last frames snap back to the reference at every segment boundary, which chaining turns
#   into a periodic twitch), so the character can keep moving with the audio;
# - close enough that RoPE still binds identity and appearance strongly (Wan-S2V's 30 is tuned for
#   a much larger model with a separate reference pathway);
# - cheap for the trainer, which trains this condition with the clip's own future frame at the
#   same distance: it needs only 16 extra frames per clip (121 + 16 = 137 frames, 5.7 s; the demo
#   model's 17-frame clips need 33). An integer, so trained and sampled positions coincide.
DEFAULT_DELTA = 4.0


@dataclass
class SegmentConditions:
    """Conditions of one segment; builds `x` / `frame_positions` for the model and pins clean frames.

    `motion_latents` `[B, C, m, h, w]`: clean latents of the segment's first m frames (continuation,
    or the reference pinned as first frame). `reference_latent` `[B, C, 1, h, w]`. `latent_shape`
    `(B, C, h, w)` is needed only when neither latent is given (it is inferred otherwise).
    """

    n_latent_frames: int
    motion_latents: torch.Tensor | None = None
    reference_latent: torch.Tensor | None = None
    reference_mode: str = "pseudo_last_frame"
    delta: float = DEFAULT_DELTA
    latent_shape: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        t = self.n_latent_frames
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise InputError(f"n_latent_frames must be a positive integer, got {t!r}")
        if self.reference_mode not in REFERENCE_MODES:
            raise InputError(f"reference_mode must be one of {', '.join(REFERENCE_MODES)}, got {self.reference_mode!r}")
        try:
            delta = float(self.delta)
        except (TypeError, ValueError):
            delta = float("nan")
        if not math.isfinite(delta) or delta <= 0:
            raise InputError(
                f"delta (latent frames between the last frame and the pseudo last frame) must be > 0, "
                f"got {self.delta!r}; the default is {DEFAULT_DELTA:g}"
            )
        self.delta = delta
        if self.reference_mode != "none" and self.reference_latent is None:
            raise InputError(
                f"reference_mode {self.reference_mode!r} needs the reference image's latent; pass it, "
                "or use reference_mode='none'"
            )
        shapes = {}
        if self.motion_latents is not None:
            m = self.motion_latents
            if m.dim() != 5 or not 1 <= m.shape[2] <= t:
                raise InputError(
                    f"motion_latents must be [B, C, m, h, w] with 1 <= m <= {t} latent frames, got {tuple(m.shape)}"
                )
            shapes["motion_latents"] = (m.shape[0], m.shape[1], m.shape[3], m.shape[4])
        if self.reference_latent is not None:  # in mode "none" it still tells the latent shape
            r = self.reference_latent
            if r.dim() != 5 or r.shape[2] != 1:
                raise InputError(f"reference_latent must be [B, C, 1, h, w], got {tuple(r.shape)}")
            shapes["reference_latent"] = (r.shape[0], r.shape[1], r.shape[3], r.shape[4])
        if self.latent_shape is not None:
            shapes["latent_shape"] = tuple(int(v) for v in self.latent_shape)
        if not shapes:
            raise InputError("SegmentConditions needs latent_shape=(B, C, h, w) when there are no motion or reference latents")
        # Batch 1 conditions broadcast over a larger batch; channels and size must agree exactly.
        batch = max(s[0] for s in shapes.values())
        if len({s[1:] for s in shapes.values()}) > 1 or any(s[0] not in (1, batch) for s in shapes.values()):
            raise InputError(f"conditioning latents disagree in shape (B, C, h, w): {shapes}")
        self.latent_shape = (batch,) + next(iter(shapes.values()))[1:]

    # ---- geometry -------------------------------------------------------------------------------
    @property
    def n_motion(self) -> int:
        """Leading latent frames that are clean and pinned."""
        return 0 if self.motion_latents is None else int(self.motion_latents.shape[2])

    @property
    def n_extra(self) -> int:
        """Frames appended after the generated ones (the reference / pseudo last frame)."""
        return 0 if self.reference_mode == "none" else 1

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """Shape of the generated latent `[B, C, t, h, w]` (what sampling starts from and returns)."""
        b, c, h, w = self.latent_shape
        return (b, c, self.n_latent_frames, h, w)

    def frame_positions(self, device=None) -> torch.Tensor:
        """`[t_all]` float32 temporal RoPE positions: 0..t-1, then the extra frame's position."""
        t = self.n_latent_frames
        pos = torch.arange(t, dtype=torch.float32, device=device)
        if self.reference_mode == "pseudo_last_frame":
            pos = torch.cat([pos, torch.tensor([t - 1 + self.delta], dtype=torch.float32, device=device)])
        elif self.reference_mode == "reference":
            pos = torch.cat([pos, torch.zeros(1, dtype=torch.float32, device=device)])
        return pos

    def mask(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """`[B, 1, t_all, h, w]`: 1 on clean conditioning frames, 0 on frames to generate."""
        b, _, t, h, w = self.shape
        keep = torch.zeros(t + self.n_extra, dtype=dtype, device=device)
        keep[: self.n_motion] = 1
        keep[t:] = 1
        return keep.view(1, 1, -1, 1, 1).expand(b, 1, -1, h, w)

    # ---- per step -------------------------------------------------------------------------------
    def pin(self, x: torch.Tensor) -> torch.Tensor:
        """`x` with its first m frames replaced by the clean motion latents (exact copies)."""
        if self.motion_latents is None:
            return x
        x = x.clone()
        x[:, :, : self.n_motion] = self.motion_latents.to(device=x.device, dtype=x.dtype)
        return x

    def model_input(self, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(`[B, C + 1, t_all, h, w]` latents + mask channel, `[t_all]` frame positions) for `x_t` `[B, C, t, h, w]`."""
        if tuple(x_t.shape[1:]) != self.shape[1:] or x_t.shape[0] not in (1, self.shape[0]):
            raise InputError(f"x_t has shape {tuple(x_t.shape)}, these conditions expect {self.shape}")
        x = self.pin(x_t)
        if self.n_extra:
            ref = self.reference_latent.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1, -1, -1)
            x = torch.cat([x, ref], dim=2)
        mask = self.mask(device=x.device, dtype=x.dtype)[: 1].expand(x.shape[0], -1, -1, -1, -1)
        return torch.cat([x, mask], dim=1), self.frame_positions(device=x.device)

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """Drop the extra frames from a model output or latent: `[B, C, t_all, ...]` -> `[B, C, t, ...]`."""
        return y[:, :, : self.n_latent_frames]

    def generated(self, y: torch.Tensor) -> torch.Tensor:
        """`y` with zeros on the pinned frames: their velocity must not move them."""
        if not self.n_motion:
            return y
        y = y.clone()
        y[:, :, : self.n_motion] = 0
        return y
