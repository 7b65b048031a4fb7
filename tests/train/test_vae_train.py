"""VAE training: the loss, the latent statistics of the export, bit-exact resume, bad data."""

import pytest
import torch

from omnihuman_core.errors import InputError
from omnihuman_core.synth import write_dataset
from omnihuman_core.train.loop import TrainConfig
from omnihuman_core.train.vae import VAESettings, train_vae, vae_loss
from omnihuman_core.vae import CausalVideoVAE
from omnihuman_core.weights import load_into, load_safetensors, read_metadata


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, 3, seed=5, size=64, frames=17, test_fraction=0.0, speech="babble")
    return root


def settings():
    return VAESettings(preset="tiny", frames=5, crop=32, stats_windows=2, stats_frames=9)


def config(steps):
    return TrainConfig(lr=1e-3, warmup=2, steps=steps, batch_size=2, ema_decay=0.9, ckpt_every=100, log_every=1)


def test_vae_loss_terms():
    torch.manual_seed(0)
    vae = CausalVideoVAE.from_config("tiny")
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    a, stats = vae_loss(vae, video, torch.Generator().manual_seed(1), kl_weight=0.0, motion_weight=0.0)
    b, _ = vae_loss(vae, video, torch.Generator().manual_seed(1), kl_weight=0.0, motion_weight=0.0)
    assert torch.equal(a, b) and set(stats) == {"loss", "l1", "motion", "kl"}
    assert a.item() == pytest.approx(stats["l1"])  # weights 0: the loss is the L1 alone
    full, s2 = vae_loss(vae, video, torch.Generator().manual_seed(1), kl_weight=0.5, motion_weight=2.0)
    assert full.item() == pytest.approx(s2["l1"] + 2.0 * s2["motion"] + 0.5 * s2["kl"], rel=1e-5)
    full.backward()
    assert vae.encoder.conv_in.weight.grad.abs().sum() > 0
    _, still = vae_loss(vae, video[:, :, :1], torch.Generator().manual_seed(1))
    assert still["motion"] == 0.0  # one frame: no motion to keep


def test_train_export_and_bit_exact_resume(dataset, tmp_path):
    result, path = train_vae(dataset, tmp_path / "a.safetensors", tmp_path / "a", settings(), config(4), log=lambda m: None)
    assert result.done and result.step == 4
    state, cfg = load_safetensors(path, "vae")
    vae = CausalVideoVAE.from_config(cfg)
    load_into(vae, state, path)
    # The latent statistics were measured and stored: normalised latents of real windows are about unit std.
    assert not torch.allclose(vae.latent_std, torch.ones_like(vae.latent_std))
    assert state["encoder.conv_in.weight"].dtype == torch.float16
    meta = read_metadata(path)
    assert '"steps": 4' in meta["training"] and "recon_l1_full_window" in meta["training"]

    paused, none = train_vae(dataset, tmp_path / "b.safetensors", tmp_path / "b", settings(), config(2), log=lambda m: None)
    assert paused.done and none is not None  # a finished 2-step run exports too
    resumed, path_b = train_vae(dataset, tmp_path / "b.safetensors", tmp_path / "b", settings(), config(4),
                                log=lambda m: None)
    assert resumed.step == 4
    other, _ = load_safetensors(path_b, "vae")
    for k in state:
        assert torch.equal(state[k], other[k]), k


def test_paused_run_writes_no_model(dataset, tmp_path):
    result, path = train_vae(dataset, tmp_path / "v.safetensors", tmp_path / "w", settings(), config(3),
                             max_minutes=0, log=lambda m: None)
    assert result.status == "paused" and path is None and not (tmp_path / "v.safetensors").exists()


def test_bad_settings_and_data(dataset, tmp_path):
    with pytest.raises(InputError, match="multiple of the VAE's spatial factor 8"):
        train_vae(dataset, tmp_path / "v.safetensors", tmp_path / "w", VAESettings(preset="tiny", crop=20), config(1))
    with pytest.raises(InputError, match="does not exist"):
        train_vae(tmp_path / "missing", tmp_path / "v.safetensors", tmp_path / "w", settings(), config(1))
    with pytest.raises(InputError, match="a training window needs 21"):
        train_vae(dataset, tmp_path / "v.safetensors", tmp_path / "w", VAESettings(preset="tiny", frames=21, crop=32),
                  config(1), log=lambda m: None)
