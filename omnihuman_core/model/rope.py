"""3D rotary position embedding over (t, h, w), shared by video and audio tokens.

Every token carries an explicit (t, h, w) position. The tables are complex rotations `[N, head_dim / 2]`
(fp32, built once per forward and shared by all layers); applying one is a single complex multiply,
which on CPU is ~5x cheaper than the rotate-half formulation.

Position conventions (why):
- Video: t = the latent frame's entry in `frame_positions` (a float, so the pseudo last frame is just
  a frame at `t_last + delta`); h, w = patch-grid indices *centred on the grid* (index - (n - 1) / 2).
  RoPE is relative, so centring changes nothing between video tokens, but it makes position 0 (where
  un-rotated tokens implicitly sit, see text) the middle of the frame instead of its top-left corner.
- Audio: t = the time of the video frame the token stands for, on the latent time axis, so mouth and
  sound align by position. A latent frame j > 0 of the causal 4x VAE holds video frames 4j-3..4j, and
  its A = 4 tokens sit at j - 3/4, j - 1/2, j - 1/4, j (`audio_subframes`); latent frame 0 holds frame 0
  alone, so its (repeated) tokens all sit at its own position. Without the sub-frame offsets the four
  tokens of a latent frame would share one position and attention could not tell their order, which
  the decoder needs to open and close the mouth within a latent frame. h, w = the centre of the patch
  grid (0, 0 after centring): a sound has no place in the image, and the centre keeps every region at
  the same distance, with no bias toward a corner.
- Text: no rotation (identity, i.e. position (0, 0, 0)). The text encoder already encodes word order,
  and laying words on the video time axis would pull early words toward early frames. Consequence:
  text-video attention sees the *absolute* frame positions, so the conditioning code must keep the
  first generated frame at the same position in training and inference (sampling starts at 0).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Rope(NamedTuple):
    """Rotation tables of one forward, complex64 `[N, head_dim / 2]`.

    `joint` follows the token order of the joint attention: video, text, audio (branch mode) or video,
    text (cross-attention mode). `video` and `audio` are the tables of those streams alone (views where
    possible), used by the audio cross-attention.
    """

    joint: torch.Tensor
    video: torch.Tensor
    audio: torch.Tensor


def rope_table(positions: torch.Tensor, axes: tuple[int, int, int], theta: float = 10000.0) -> torch.Tensor:
    """Complex rotations `[N, sum(axes) / 2]` for float positions `[N, 3]`; axis i uses `axes[i]` dims."""
    positions = positions.to(torch.float32)
    angles = []
    for i, dim in enumerate(axes):
        if dim == 0:
            continue
        inv_freq = theta ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
        angles.append(positions[:, i : i + 1] * inv_freq)
    angle = torch.cat(angles, dim=-1)
    return torch.polar(torch.ones_like(angle), angle)


def temporal_patch_positions(frame_positions: torch.Tensor, pt: int) -> torch.Tensor:
    """Position of each temporal patch: the mean of the `pt` latent frames it covers."""
    if pt == 1:
        return frame_positions
    return frame_positions.reshape(-1, pt).mean(dim=1)


def video_positions(frame_positions: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """(t, h, w) of every video token `[T * grid_h * grid_w, 3]`, in patchify order, h/w centred."""
    device = frame_positions.device
    t = frame_positions.to(torch.float32)
    h = torch.arange(grid_h, device=device, dtype=torch.float32) - (grid_h - 1) / 2
    w = torch.arange(grid_w, device=device, dtype=torch.float32) - (grid_w - 1) / 2
    tt, hh, ww = torch.meshgrid(t, h, w, indexing="ij")
    return torch.stack((tt, hh, ww), dim=-1).reshape(-1, 3)


def audio_positions(frame_positions: torch.Tensor, audio_frames: int, tokens_per_frame: int,
                    subframes: bool = True) -> torch.Tensor:
    """(t, 0, 0) for `tokens_per_frame` audio tokens on each of the first `audio_frames` latent frames.

    `subframes`: token k of latent frame j > 0 sits at `t_j - (A - 1 - k) / A` (the time of its own video
    frame, A = tokens_per_frame); latent frame 0 (one video frame) keeps `t_0` for all its tokens.
    False: every token at its latent frame's position.
    """
    t = frame_positions[:audio_frames].to(torch.float32).repeat_interleave(tokens_per_frame)
    if subframes and tokens_per_frame > 1 and audio_frames > 1:
        k = torch.arange(tokens_per_frame, device=t.device, dtype=torch.float32)
        offset = ((k - (tokens_per_frame - 1)) / tokens_per_frame).repeat(audio_frames)
        offset[:tokens_per_frame] = 0.0
        t = t + offset
    pos = torch.zeros(t.shape[0], 3, device=frame_positions.device, dtype=torch.float32)
    pos[:, 0] = t
    return pos


def build_rope(
    frame_positions: torch.Tensor,
    grid: tuple[int, int],
    text_tokens: int,
    audio_frames: int,
    audio_per_frame: int,
    axes: tuple[int, int, int],
    theta: float = 10000.0,
    *,
    temporal_patch: int = 1,
    audio_in_joint: bool = True,
    audio_subframes: bool = True,
) -> Rope:
    """All rotation tables of one forward. `frame_positions` `[t_all]` (latent frames), `grid` = patch grid (h, w)."""
    frame_positions = frame_positions.to(torch.float32)
    video = video_positions(temporal_patch_positions(frame_positions, temporal_patch), *grid)
    text = torch.zeros(text_tokens, 3, device=frame_positions.device, dtype=torch.float32)  # identity
    audio = audio_positions(frame_positions, audio_frames, audio_per_frame, audio_subframes)
    nv = video.shape[0]
    if audio_in_joint:
        joint = rope_table(torch.cat((video, text, audio)), axes, theta)
        return Rope(joint, joint[:nv], joint[nv + text_tokens :])
    joint = rope_table(torch.cat((video, text)), axes, theta)
    return Rope(joint, joint[:nv], rope_table(audio, axes, theta))


def apply_rope(x: torch.Tensor, table: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rotate `x` `[B, N, *mid, D]` by `table` `[N, D/2]` in fp32; returns `dtype` (default x's).

    Pairs are adjacent dims (2i, 2i+1). fp32 because bf16 rotations of large angles lose relative position.
    """
    out_dtype = x.dtype if dtype is None else dtype
    xf = x.float()
    if xf.stride(-1) != 1:
        xf = xf.contiguous()
    shape = xf.shape
    xc = torch.view_as_complex(xf.reshape(*shape[:-1], shape[-1] // 2, 2))
    t = table.reshape(table.shape[0], *([1] * (x.dim() - 3)), table.shape[-1])
    return torch.view_as_real(xc * t).reshape(shape).to(out_dtype)
