"""The MMDiT training objective: the input it builds is the sampler's, dropouts are the sampler's null
conditions, pinned frames are not trained, randomness comes from the generator, and it learns."""

import math

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.model import MMDiT, MMDiTConfig
from omnihuman_core.sampling.conditioning import SegmentConditions
from omnihuman_core.sampling.denoise import make_noise, sample_segment
from omnihuman_core.sampling.flow import noised
from omnihuman_core.sampling.guidance import Guidance
from omnihuman_core.train.objective import (
    ABLATIONS, Draws, Recipe, cell_weights, draw, encode_captions, flow_matching_loss, loss_from_draws, mouth_cells,
    moving_cells, sample_timesteps,
)
from omnihuman_core.train.mmdit import MMDiTSettings
from omnihuman_core.train.stages import STAGES, split_steps, trainable_parameters
from .helpers import randomized, tiny_model, tiny_text

B, C, T, H, W = 4, 4, 5, 4, 4  # tiny preset: 4 latent channels; 5 latent frames = 17 video frames
A, D = 4, 24  # audio tokens per latent frame, tiny audio_dim
CAPTIONS = ["a woman waves", "he nods slowly", "", "a man talks and smiles"]



def make_batch(seed=0, b=B):
    g = torch.Generator().manual_seed(seed)
    return {
        "latents": torch.randn(b, C, T, H, W, generator=g),
        "last_latent": torch.randn(b, C, 1, H, W, generator=g),
        "reference_latent": torch.randn(b, C, 1, H, W, generator=g),
        "audio": torch.randn(b, T, A, D, generator=g),
        "captions": CAPTIONS[:b],
        "clip_ids": [f"clip_{i}" for i in range(b)],
    }


def make_draws(b=B, t=0.6, seed=3, pin=None, extra=None, drop_text=None, drop_audio=None):
    def flags(v):
        return torch.zeros(b, dtype=torch.bool) if v is None else torch.tensor(v, dtype=torch.bool)

    return Draws(timestep=torch.full((b,), float(t)), noise=make_noise((b, C, T, H, W), seed=seed),
                 pin_first=flags(pin), extra_frame=flags(extra if extra is not None else [True] * b),
                 drop_text=flags(drop_text), drop_audio=flags(drop_audio))


class Recorder(torch.nn.Module):
    """Wraps a model and records each forward's inputs and output."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x, timestep, text, audio, *, frame_positions, text_mask=None):
        out = self.model(x, timestep, text, audio, frame_positions=frame_positions, text_mask=text_mask)
        if out.requires_grad:
            out.retain_grad()
        self.calls.append(dict(x=x.detach().clone(), timestep=timestep.clone(), text=text.detach().clone(),
                               audio=None if audio is None else audio.clone(), frame_positions=frame_positions.clone(),
                               text_mask=text_mask.clone(), out=out))
        return out


# ---- recipe --------------------------------------------------------------------------------------------
def test_recipe_round_trip_and_validation():
    r = Recipe(reference_mode="reference", p_drop_text=0.3)
    assert Recipe.from_dict(r.to_dict()) == r
    assert Recipe().render_defaults() == {"reference_mode": "pseudo_last_frame", "delta": 4.0, "motion_frames": 5,
                                          "motion_noise": 0.0}
    assert Recipe(motion_noise=0.1).render_defaults()["motion_noise"] == pytest.approx(0.05)
    # The ablations never pin the image as the first frame, whatever defaults they are merged into: the "none"
    # row must not see the image at all.
    for mode in ("reference", "none"):
        defaults = {"first_frame_from_reference": True, **Recipe(reference_mode=mode).render_defaults()}
        assert defaults["first_frame_from_reference"] is False
    for bad in (dict(reference_mode="image"), dict(p_drop_audio=1.5), dict(p_first_frames=-0.1),
                dict(delta=0), dict(logit_normal_std=0), dict(motion_latent_frames=0),
                dict(motion_latent_frames=1.5), dict(p_drop_text=float("nan")), dict(motion_noise=-0.1),
                dict(motion_noise=1.0), dict(motion_noise=True)):
        with pytest.raises(InputError):
            Recipe(**bad)
    Recipe(motion_latent_frames=0, p_first_frames=0.0)  # no continuation training is a valid choice


def test_logit_normal_timesteps():
    g = torch.Generator().manual_seed(0)
    t = sample_timesteps(40000, 0.0, 1.0, g)
    assert t.dtype == torch.float32 and bool(((t > 0) & (t < 1)).all())
    assert abs(t.median().item() - 0.5) < 0.01
    z = torch.logit(t.double())
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1.0) < 0.02
    # Mass in the middle: logit-normal(0, 1) puts ~68 % of the draws in (sigmoid(-1), sigmoid(1)).
    inside = ((t > torch.sigmoid(torch.tensor(-1.0))) & (t < torch.sigmoid(torch.tensor(1.0)))).float().mean()
    assert abs(inside.item() - 0.6827) < 0.01
    shifted = sample_timesteps(40000, 1.0, 0.5, g)
    assert abs(shifted.median().item() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.01


def test_a_logit_normal_mean_of_ln_s_is_the_samplers_shift_s():
    # `train mmdit --timestep-shift s` sets the mean to ln(s): the same draws, shifted as the sampler shifts its grid.
    from omnihuman_core.sampling import shift_time

    z = torch.linspace(-6, 6, 101, dtype=torch.float64)
    for s in (0.5, 3.0, 5.0):
        assert torch.allclose(shift_time(torch.sigmoid(z), s), torch.sigmoid(z + math.log(s)), atol=1e-12)
    assert MMDiTSettings(timestep_shift=3.0).recipe().logit_normal_mean == math.log(3.0)
    assert MMDiTSettings().recipe().logit_normal_mean == 0.0
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(InputError, match="timestep_shift must be a positive number"):
            MMDiTSettings(timestep_shift=bad)


# ---- training input == sampler input --------------------------------------------------------------------
def sampler_call(model, batch, row, recipe, pin, extra, seed, audio=True, guidance=None):
    """The model inputs `sample_segment` builds (first step, t = 1) for one sample's conditions,
    with the conditions made the way the chainer makes them."""
    mode = recipe.reference_mode if extra else "none"
    key = {"pseudo_last_frame": "last_latent", "reference": "reference_latent"}.get(recipe.reference_mode)
    cond = SegmentConditions(T, motion_latents=batch["latents"][row:row + 1, :, :recipe.motion_latent_frames] if pin
                             else None, reference_latent=batch[key][row:row + 1] if key else None,
                             reference_mode=mode, delta=recipe.delta, latent_shape=(1, C, H, W))
    text, text_mask = tiny_text().encode([batch["captions"][row]])
    rec = Recorder(model)
    sample_segment(rec, cond, text, text_mask, batch["audio"][row:row + 1] if audio else None, steps=1, shift=1.0,
                   guidance=guidance or Guidance(1.0, 1.0), seed=seed)
    return rec.calls[0]


@pytest.mark.parametrize("mode", ["pseudo_last_frame", "reference", "none"])
def test_training_input_is_the_samplers_per_sample(mode):
    """Four samples with different pin / extra-frame choices: each one's model input (x with the mask
    channel, frame_positions, timestep, text, audio) equals the sampler's for its conditions alone."""
    recipe = Recipe(reference_mode=mode)
    batch = make_batch()
    model = tiny_model()
    pin, extra = [True, False, True, False], [True, True, False, False]
    if mode == "none":
        extra = [False] * B
    seeds = [11, 12, 13, 14]
    noise = torch.cat([make_noise((1, C, T, H, W), seed=s) for s in seeds])
    draws = make_draws(t=1.0, pin=pin, extra=extra)
    draws.noise = noise
    rec = Recorder(model)
    loss, stats = loss_from_draws(rec, tiny_text(), batch, recipe, "stage1", draws)
    assert stats["forwards"] == (1 if mode == "none" else 2)
    # Rows in forward order: the extra-frame group first, then the rest, each in batch order.
    order = [i for i in range(B) if extra[i]] + [i for i in range(B) if not extra[i]]
    got = {}
    for call in rec.calls:
        for j in range(call["x"].shape[0]):
            got[order[len(got)]] = {k: (v if k == "frame_positions" else v[j:j + 1]) for k, v in call.items()
                                    if k != "out"}
    for i in range(B):
        want = sampler_call(model, batch, i, recipe, pin[i], extra[i], seeds[i])
        g = got[i]
        assert torch.equal(g["x"], want["x"]), f"sample {i}: x / mask channel differ"
        assert torch.equal(g["frame_positions"], want["frame_positions"])
        assert torch.equal(g["timestep"], want["timestep"]) and g["timestep"].dtype == torch.float32
        assert torch.equal(g["audio"], want["audio"])
        n = int(want["text_mask"].sum())  # training pads to the batch's longest caption
        assert torch.equal(g["text_mask"][:, :n], want["text_mask"][:, :n]) and not g["text_mask"][:, n:].any()
        assert torch.allclose(g["text"][:, :n], want["text"][:, :n], atol=1e-6) and not g["text"][:, n:].any()
        assert not want["text_mask"][:, n:].any() and not want["text"][:, n:].any()
    # The layout the sampler uses: mask 1 on pinned and extra frames only, extra frame at t-1+delta / 0.
    x0 = rec.calls[0]["x"]
    assert x0[0, -1, :, 0, 0].tolist() == ([1.0, 1.0, 0, 0, 0] + ([1.0] if mode != "none" else []))
    if mode == "pseudo_last_frame":
        assert rec.calls[0]["frame_positions"].tolist() == [0, 1, 2, 3, 4, 4 + recipe.delta]


def test_dropout_gives_the_samplers_null_conditions():
    """Dropped text = zero features with an all-False mask, dropped audio = zeros: the velocity equals the
    sampler's (null text, null audio) guidance pass; the other samples keep their conditions."""
    batch = make_batch()
    model = tiny_model()
    recipe = Recipe()
    drop_text, drop_audio = [True, False, True, False], [True, True, False, False]
    seeds = [21, 22, 23, 24]
    draws = make_draws(t=1.0, drop_text=drop_text, drop_audio=drop_audio)
    draws.noise = torch.cat([make_noise((1, C, T, H, W), seed=s) for s in seeds])
    rec = Recorder(model)
    loss_from_draws(rec, tiny_text(), batch, recipe, "stage1", draws)
    (call,) = rec.calls
    text, mask = tiny_text().encode(batch["captions"])
    for i in range(B):
        if drop_text[i]:
            assert not call["text_mask"][i].any() and not call["text"][i].any()
        else:
            assert torch.equal(call["text_mask"][i], mask[i]) and torch.allclose(call["text"][i], text[i])
        if drop_audio[i]:
            assert torch.equal(call["audio"][i], torch.zeros(T, A, D))  # +0.0, exactly the sampler's zeros
        else:
            assert torch.equal(call["audio"][i], batch["audio"][i])
    # Sample 0 dropped both: its velocity is the sampler's unconditional pass (the 3rd of the batched
    # guidance passes (T,A), (0,A), (0,0)) for the same noise, caption and audio.
    want = sampler_call(model, batch, 0, recipe, False, True, seeds[0], guidance=Guidance(5.0, 4.0))
    assert want["x"].shape[0] == 3
    assert not want["text_mask"][2].any() and not want["audio"][2].any()
    assert torch.allclose(call["out"][0], model(want["x"][2:], want["timestep"][2:], want["text"][2:],
                                                want["audio"][2:], frame_positions=want["frame_positions"],
                                                text_mask=want["text_mask"][2:])[0], atol=1e-5)
    # Sample 1 dropped only audio: the sampler's (text, null audio) condition is not a guidance pass, but
    # its audio input is the same zeros as pass (0,0).
    assert torch.equal(call["audio"][1], want["audio"][2, :, :, :])


def test_base_stage_has_no_audio_tokens():
    rec = Recorder(tiny_model())
    batch = make_batch()
    del batch["audio"]  # the base never needs it
    _, stats = loss_from_draws(rec, tiny_text(), batch, Recipe(), "base", make_draws())
    assert all(c["audio"] is None for c in rec.calls) and "audio_dropped" not in stats


# ---- loss ---------------------------------------------------------------------------------------------
def test_pinned_frames_are_not_trained():
    """Pinned frames take no part in the loss: changing their target (the noise there, which never
    reaches the input since they are clean) leaves the loss bit-identical and their output gets zero
    gradient; the same change on a generated frame changes the loss."""
    batch, model, text = make_batch(), tiny_model(), tiny_text()
    recipe = Recipe()
    m = recipe.motion_latent_frames
    pin = [True, True, False, True]
    draws = make_draws(pin=pin, extra=[True, False, True, False])
    rec = Recorder(model)
    loss, stats = loss_from_draws(rec, text, batch, recipe, "stage1", draws)
    assert stats["pinned"] == 0.75 and stats["forwards"] == 2
    loss.backward()
    order = [0, 2, 1, 3]  # the extra-frame group, then the rest
    outs = [g for c in rec.calls for g in c["out"].grad]
    assert [g.shape[1] for g in outs] == [T + 1, T + 1, T, T]
    for g, i in zip(outs, order):
        if pin[i]:
            assert not g[:, :m].any()
        assert g[:, m:T].abs().sum() > 0
        assert not g[:, T:].any()  # the extra frame is never a prediction
    perturbed = make_draws(pin=pin, extra=[True, False, True, False])
    perturbed.noise[:, :, :m] += 10.0 * torch.tensor(pin, dtype=torch.float32).view(B, 1, 1, 1, 1)
    assert torch.equal(loss_from_draws(model, text, batch, recipe, "stage1", perturbed)[0], loss)
    perturbed.noise[2, :, 0] += 1.0  # sample 2 is not pinned: frame 0 is generated there
    assert not torch.equal(loss_from_draws(model, text, batch, recipe, "stage1", perturbed)[0], loss)


def test_motion_noise_moves_the_pinned_latents_along_the_flow_path():
    """Recipe.motion_noise: each pinned sample's motion latents reach the model at its drawn flow time on
    its own noise (the pinned frames' noise, unused otherwise); 0 = the exact copies of before."""
    batch, model, text = make_batch(), tiny_model(), tiny_text()
    pin = [True, True, False, True]
    draws = make_draws(pin=pin)
    draws.motion_noise = torch.tensor([0.08, 0.0, 0.05, 0.02])
    for level in (0.0, 0.1):
        recipe = Recipe(motion_noise=level)
        m = recipe.motion_latent_frames
        rec = Recorder(model)
        loss_from_draws(rec, text, batch, recipe, "stage1", draws)
        (call,) = rec.calls
        x0 = batch["latents"][:, :, :m]
        for i in range(B):
            got = call["x"][i, :C, :m]
            if not pin[i]:
                continue
            want = x0[i] if level == 0 else noised(x0[i], draws.noise[i, :, :m], float(draws.motion_noise[i]))
            assert torch.allclose(got, want, atol=1e-6), (level, i)
    # Drawn: uniform in [0, motion_noise] on the pinned samples, and the other draws are unchanged by it.
    g = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    big = make_batch(b=64)
    with_noise, without = draw(big, Recipe(motion_noise=0.1), g()), draw(big, Recipe(), g())
    assert torch.equal(with_noise.noise, without.noise) and torch.equal(with_noise.timestep, without.timestep)
    assert torch.equal(with_noise.pin_first, without.pin_first)
    levels = with_noise.motion_noise[with_noise.pin_first]
    assert levels.min() >= 0 and levels.max() <= 0.1 and levels.std() > 0.01
    assert not without.motion_noise.any()


def test_same_generator_seed_same_loss():
    batch, model, text = make_batch(), tiny_model(), tiny_text()
    recipe = Recipe(p_drop_last=0.5, p_first_frames=0.5, p_drop_text=0.5, p_drop_audio=0.5)

    def run(seed):
        return flow_matching_loss(model, text, batch, recipe, "stage1", torch.Generator().manual_seed(seed))

    (l1, s1), (l2, s2), (l3, _) = run(5), run(5), run(6)
    assert torch.equal(l1, l2) and s1 == s2
    assert not torch.equal(l1, l3)
    # The draws do not depend on the recipe or the stage: ablations sharing a seed share noise and t.
    _, sa = flow_matching_loss(model, text, batch, Recipe(reference_mode="none"), "base",
                               torch.Generator().manual_seed(5))
    assert sa["t"] == s1["t"]


def overfit(stage, fresh_draws, steps=50):
    """Train a fresh tiny model (with its text encoder) on one batch; (held-out loss before, after, losses)."""
    torch.manual_seed(0)
    batch, model, text, recipe = make_batch(b=2), MMDiT(MMDiTConfig.preset("tiny")), tiny_text(), Recipe()
    opt = torch.optim.AdamW(trainable_parameters(model, text, stage), lr=3e-3)
    held_out = make_draws(b=2, t=0.5, seed=99, pin=[True, False])
    before = loss_from_draws(model, text, batch, recipe, stage, held_out)[0].item()
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        loss, _ = flow_matching_loss(model, text, batch, recipe, stage, g if fresh_draws else
                                     torch.Generator().manual_seed(7))
        assert math.isfinite(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return before, loss_from_draws(model, text, batch, recipe, stage, held_out)[0].item(), losses


def test_loss_decreases_when_overfitting_one_batch():
    # The same draws every step: a plain regression the model must fit almost exactly.
    _, _, losses = overfit("stage1", fresh_draws=False)
    assert losses[-1] < 0.05 * losses[0], losses[::10]
    # Fresh noise and timesteps every step (the real objective): slower, but the loss at held-out
    # draws falls.
    before, after, _ = overfit("base", fresh_draws=True)
    assert after < 0.9 * before, (before, after)


def test_low_precision_model_runs():
    model = tiny_model().to(torch.bfloat16)
    loss, _ = flow_matching_loss(model, tiny_text(), make_batch(), Recipe(), "stage1", torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()


def test_trained_text_encoder_features_equal_encode():
    text = tiny_text()
    trainable_parameters(tiny_model(), text, "base")
    feats, mask = encode_captions(text, CAPTIONS, "cpu", torch.float32)
    assert feats.requires_grad
    ref_feats, ref_mask = text.encode(CAPTIONS)
    assert torch.equal(mask, ref_mask) and torch.allclose(feats, ref_feats)
    trainable_parameters(tiny_model(), text, "stage1")
    feats, _ = encode_captions(text, CAPTIONS, "cpu", torch.float32)
    assert not feats.requires_grad


def test_bad_batches_are_named():
    model, text = tiny_model(), tiny_text()
    g = torch.Generator().manual_seed(0)
    batch = make_batch()
    del batch["last_latent"]
    with pytest.raises(InputError, match="last_latent"):
        flow_matching_loss(model, text, batch, Recipe(), "stage1", g)
    flow_matching_loss(model, text, batch, Recipe(reference_mode="reference"), "stage1", g)  # not needed there
    batch = make_batch()
    batch["audio"] = batch["audio"][:, :3]
    with pytest.raises(InputError, match="audio"):
        flow_matching_loss(model, text, batch, Recipe(), "stage2", g)
    with pytest.raises(InputError, match="captions"):
        flow_matching_loss(model, text, {**make_batch(), "captions": "one string"}, Recipe(), "stage1", g)
    with pytest.raises(InputError, match="stage"):
        flow_matching_loss(model, text, make_batch(), Recipe(), "stage3", g)
    short = {**make_batch(), "latents": torch.randn(B, C, 2, H, W)}
    with pytest.raises(InputError, match="motion_latent_frames"):
        flow_matching_loss(model, text, short, Recipe(), "stage1", g)


# ---- ablations ----------------------------------------------------------------------------------------
def test_ablations():
    assert set(ABLATIONS) == {"full", "cross_attention_audio", "no_mm_warmup", "reference_image", "no_reference",
                              "no_reasoning"}
    assert ABLATIONS["no_reasoning"].schedule is None and "generic" in ABLATIONS["no_reasoning"].note
    assert ABLATIONS["reference_image"].make_recipe().reference_mode == "reference"
    assert ABLATIONS["no_reference"].make_recipe().reference_mode == "none"
    assert MMDiTConfig.preset("tiny", **ABLATIONS["cross_attention_audio"].model).audio_mode == "cross_attention"
    full = split_steps(ABLATIONS["full"].schedule, 1000)
    assert [s for s, _ in full] == ["base", "stage1", "stage2"]
    assert split_steps(ABLATIONS["no_mm_warmup"].schedule, 1000) == [("base", 400), ("joint", 600)]
    for name, ab in ABLATIONS.items():
        ab.make_recipe()
        if ab.schedule is not None:
            assert sum(n for _, n in split_steps(ab.schedule, 999)) == 999
            assert all(s in STAGES for s, _ in ab.schedule)


def test_cross_attention_ablation_trains():
    model = tiny_model(audio_mode="cross_attention")
    loss, _ = flow_matching_loss(model, tiny_text(), make_batch(), Recipe(), "stage1", torch.Generator().manual_seed(0))
    loss.backward()
    assert model.blocks[0].audio_cross.kv.weight.grad.abs().sum() > 0


def test_ranks_run_the_same_forwards(monkeypatch):
    """Under torchrun both groups run even when one is empty (FSDP gathers parameters in every forward,
    so ranks must agree on the count); the empty forward changes neither the loss nor the gradients."""
    import omnihuman_core.train.objective as objective

    batch, text = make_batch(), tiny_text()
    draws = make_draws(pin=[True, False, True, False])  # every sample has the extra frame
    model = tiny_model()
    loss, stats = loss_from_draws(model, text, batch, Recipe(), "stage1", draws)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert stats["forwards"] == 1
    monkeypatch.setattr(objective, "_distributed", lambda: True)
    model.zero_grad()
    loss2, stats2 = loss_from_draws(model, text, batch, Recipe(), "stage1", draws)
    loss2.backward()
    assert stats2["forwards"] == 2 and torch.equal(loss, loss2)
    assert all(torch.allclose(a, p.grad) for a, p in zip(grads, model.parameters()))
    # "none" has a single layout: one forward on every rank.
    assert loss_from_draws(model, text, batch, Recipe(reference_mode="none"), "stage1", draws)[1]["forwards"] == 1


# ---- face weight -----------------------------------------------------------------------------------------
def test_face_weight_reweights_face_cells_per_frame_and_needs_the_mask():
    model = tiny_model().eval()
    batch = make_batch()
    draws = make_draws(extra=[True] * B)
    plain = Recipe()
    with torch.no_grad():
        base, _ = loss_from_draws(model, tiny_text(), batch, plain, "joint", draws)
        # No face anywhere: any face weight gives the plain mean.
        batch["face"] = torch.zeros(B, T, H, W)
        same, _ = loss_from_draws(model, tiny_text(), batch, Recipe(face_weight=5.0), "joint", draws)
        assert torch.allclose(same, base)
        # A face on one cell of every frame: that cell's error counts 5x in its frame's mean.
        batch["face"][:, :, 1, 2] = 1.0
        weighted, _ = loss_from_draws(model, tiny_text(), batch, Recipe(face_weight=5.0), "joint", draws)
        cond = SegmentConditions(T, reference_latent=batch["last_latent"], reference_mode="pseudo_last_frame",
                                 latent_shape=(B, C, H, W))
        x_in, pos = cond.model_input((1 - 0.6) * batch["latents"] + 0.6 * draws.noise)
        text, mask = tiny_text().encode(batch["captions"])
        v = cond.output(model(x_in, draws.timestep, text, batch["audio"], frame_positions=pos, text_mask=mask))
        err = (v - (draws.noise - batch["latents"])).pow(2).mean(1)
        cells = 1 + 4 * batch["face"]
        expected = ((err * cells).sum((2, 3)) / cells.sum((2, 3))).mean()
        assert torch.allclose(weighted, expected, atol=1e-5) and not torch.allclose(weighted, base)
    del batch["face"]
    with pytest.raises(InputError, match="face_weight 5 / mouth_weight 1 need batch\\['face'\\]"):
        loss_from_draws(model, tiny_text(), batch, Recipe(face_weight=5.0), "joint", draws)
    with pytest.raises(InputError):
        Recipe(face_weight=0)


def test_mouth_cells_are_the_lower_middle_of_each_frames_face_box():
    face = torch.zeros(3, 16, 16)
    face[0, 2:9, 5:11] = 1  # the synthetic head's box at 128 px: rows 2-8, columns 5-10
    face[1, 0:4, 12:16] = 1  # another frame, another place
    mouth = mouth_cells(face)
    assert sorted(map(tuple, mouth[0].nonzero().tolist())) == [(r, c) for r in (6, 7, 8) for c in (6, 7, 8, 9)]
    assert sorted(map(tuple, mouth[1].nonzero().tolist())) == [(r, c) for r in (2, 3) for c in (13, 14)]
    assert mouth[2].sum() == 0  # no face, no mouth
    assert bool(((mouth > 0) <= (face > 0)).all())  # always inside the face


def test_mouth_weight_replaces_the_face_weight_on_mouth_cells_and_needs_the_mask():
    face = torch.zeros(1, 2, 16, 16)
    face[:, :, 2:9, 5:11] = 1
    w = cell_weights(face, Recipe(face_weight=2.0, mouth_weight=30.0))
    mouth = mouth_cells(face) > 0
    assert bool((w[mouth] == 30).all()) and bool((w[(face > 0) & ~mouth] == 2).all()) and bool((w[face == 0] == 1).all())
    assert torch.equal(cell_weights(face, Recipe(face_weight=2.0)), 1 + face)
    model = tiny_model().eval()
    batch = make_batch()
    draws = make_draws(extra=[True] * B)
    with torch.no_grad():
        batch["face"] = torch.zeros(B, T, H, W)
        batch["face"][:, :, 0:H, 0:W] = 1.0
        plain, _ = loss_from_draws(model, tiny_text(), batch, Recipe(), "joint", draws)
        weighted, _ = loss_from_draws(model, tiny_text(), batch, Recipe(mouth_weight=10.0), "joint", draws)
        assert not torch.allclose(weighted, plain)
    del batch["face"]
    with pytest.raises(InputError, match="mouth_weight 10 need batch\\['face'\\]"):
        loss_from_draws(model, tiny_text(), batch, Recipe(mouth_weight=10.0), "joint", draws)
    with pytest.raises(InputError, match="mouth_weight"):
        Recipe(mouth_weight=-1)


# ---- motion weight ---------------------------------------------------------------------------------------
def test_moving_cells_are_the_share_of_cells_that_vary_most_over_the_window():
    latents = torch.zeros(2, 4, 5, 10, 10)  # 100 cells, so a share of 0.1 marks 10
    latents[0, :, :, 3, 0:4] = torch.arange(5.0).view(1, 5, 1)  # a still background but for 4 moving cells
    latents[0, 1, :, 7, 7] = torch.tensor([0.0, 1, 0, 1, 0]) * 9  # and one that moves most
    latents[1] = torch.randn(4, 1, 10, 10)  # the second window: nothing moves (every frame the same)
    moving = moving_cells(latents, share=0.1)
    assert moving.shape == (2, 1, 10, 10)
    # Only cells that move are marked, however few: a still cell is never "moving".
    assert sorted(map(tuple, moving[0, 0].nonzero().tolist())) == [(3, 0), (3, 1), (3, 2), (3, 3), (7, 7)]
    assert moving[1].sum() == 0
    assert moving_cells(latents[:, :, :1]).sum() == 0  # one latent frame: no motion to see
    noisy = torch.randn(3, 4, 5, 16, 16)
    assert moving_cells(noisy).sum((1, 2, 3)).tolist() == [26.0] * 3  # the default share of 256 cells


def test_motion_weight_raises_the_moving_cells_and_needs_no_face_boxes():
    face = torch.zeros(1, 2, 16, 16)
    face[:, :, 2:9, 5:11] = 1
    moving = torch.zeros(1, 1, 16, 16)
    moving[0, 0, 12, 3] = 1  # a hand, outside the face
    moving[0, 0, 7, 7] = 1  # the mouth, which keeps its larger weight
    w = cell_weights(face, Recipe(face_weight=2.0, mouth_weight=30.0, motion_weight=10.0), moving)
    assert bool((w[:, :, 12, 3] == 10).all()) and bool((w[:, :, 7, 7] == 30).all())
    assert torch.equal(cell_weights(face, Recipe(face_weight=2.0, motion_weight=10.0), None), 1 + face)
    model = tiny_model().eval()
    batch = make_batch()
    batch.pop("face", None)
    draws = make_draws(extra=[True] * B)
    with torch.no_grad():
        plain, _ = loss_from_draws(model, tiny_text(), batch, Recipe(), "joint", draws)
        weighted, _ = loss_from_draws(model, tiny_text(), batch, Recipe(motion_weight=10.0), "joint", draws)
        assert not torch.allclose(weighted, plain)
    with pytest.raises(InputError, match="motion_weight"):
        Recipe(motion_weight=0)
