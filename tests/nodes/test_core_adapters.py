"""ComfyUI's own VAE, CLIP and AUDIO_ENCODER standing in for the pack's components.

The fakes speak the interfaces of ComfyUI 0.8's `comfy.sd.VAE` (frames [T, H, W, 3] in 0..1 <-> raw latents
[1, C, t, h, w]), `comfy.sd.CLIP` (tokenize / encode_from_tokens -> [1, L, D]) and
`comfy.audio_encoders.AudioEncoderModel` (encode_audio(waveform [B, C, N], rate) -> a dict at 50 Hz, without
centring padding), wrapping the tiny pack models, so the results can be compared with the pack's own path.
"""

import pytest
import torch

from omnihuman_core.errors import InputError

from .helpers import features, image, speech


class FakeCoreVAE:
    latent_dim = 3

    def __init__(self, vae):
        self.vae = vae
        self.latent_channels = vae.latent_channels

    def temporal_compression_decode(self):
        return 4

    def spacial_compression_encode(self):
        return 8

    def encode(self, frames):
        video = (frames * 2 - 1).permute(3, 0, 1, 2)[None]
        return self.vae.denormalize(self.vae.encode(video)).float()  # raw latents, as ComfyUI returns them

    def decode(self, latent):
        return ((self.vae.decode(self.vae.normalize(latent)) + 1) / 2).permute(0, 2, 3, 4, 1)


class FakeCoreCLIP:
    def __init__(self, encoder):
        self.encoder = encoder

    def tokenize(self, text):
        return {"text": text}

    def encode_from_tokens(self, tokens):
        feats, mask = self.encoder.encode([tokens["text"]])
        return feats[:, mask[0]]


class Wav2Vec2Model:  # named like ComfyUI's: the adapter tells wav2vec2 from Whisper by the class name
    pass


class FakeCoreAudioEncoder:
    """Frame energies of 400-sample windows every 320 samples (a wav2vec2-like conv grid), 80 dims."""

    model = Wav2Vec2Model()

    def encode_audio(self, waveform, sample_rate):
        assert sample_rate == 16000 and waveform.dim() == 3
        frames = waveform[0, 0].unfold(0, 400, 320)  # no padding: (N - 400) // 320 + 1 features
        feats = frames.abs().mean(-1, keepdim=True).expand(-1, 80)[None]
        return {"encoded_audio": feats, "encoded_audio_all_layers": (feats * 0, feats, feats)}


def pack_components(model_folder):
    from omnihuman_core.text import load_text_encoder
    from omnihuman_core.vae import CausalVideoVAE
    from omnihuman_core.weights import load_into, load_safetensors

    state, config = load_safetensors(model_folder / "demo" / "vae.safetensors", "vae")
    vae = CausalVideoVAE.from_config(config)
    load_into(vae, state)
    return vae.eval(), load_text_encoder(str(model_folder / "demo" / "text_encoder.safetensors"))


def load(nodes, **kw):
    return nodes.OmniHumanModelLoader().load("demo/mmdit.safetensors", "demo/vae.safetensors",
                                             "demo/text_encoder.safetensors", "auto", **kw)[0]


def test_core_vae_and_clip_give_the_same_video_as_the_files(nodes, model, model_folder):
    vae, text = pack_components(model_folder)
    core = load(nodes, vae=FakeCoreVAE(vae), clip=FakeCoreCLIP(text))
    assert core.identity["vae"].startswith("core-vae:") and core.identity["text_encoder"].startswith("core-clip:")
    feats, _ = features(nodes, model, 1.0)
    args = (image(), feats, "she smiles", 3, 0, 0.0, -1.0, -1.0, 0.0, 0, 0)
    ours = nodes.OmniHumanSampler().sample(model, *args)[0]
    theirs = nodes.OmniHumanSampler().sample(core, *args)[0]
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, atol=1e-4)


def test_an_image_vae_is_refused(nodes, model_folder):
    vae, _ = pack_components(model_folder)
    image_vae = FakeCoreVAE(vae)
    image_vae.latent_dim = 2
    with pytest.raises(InputError, match="image VAE"):
        load(nodes, vae=image_vae)


def test_a_clip_of_the_wrong_size_is_reported_by_name(nodes, model):
    class Wide(FakeCoreCLIP):
        def encode_from_tokens(self, tokens):
            return torch.zeros(1, 3, 64)

    core = load(nodes, clip=Wide(None))
    feats, _ = features(nodes, model, 1.0)
    with pytest.raises(InputError, match="gives 64-dim features, the model expects 32"):
        nodes.OmniHumanSampler().sample(core, image(), feats, "hi", 0, 0, 0.0, -1.0, -1.0, 0.0, 0, 0)


def test_core_audio_encoder_is_centred_on_the_librarys_grid(nodes, model, pack):
    import sys

    from omnihuman_core.audio import n_features

    adapter = sys.modules[f"{pack.__name__}.nodes.models"].core_audio_encoder_adapter(FakeCoreAudioEncoder())
    wave = torch.rand(16000 + 123) - 0.5
    got = adapter.encode(wave)
    # Feature i is centred on sample i * 320 (200 samples each side), 1 + N // 320 of them, and is the mean
    # of the transformer layers (ComfyUI's first entry, the embeddings, is left out).
    expected = torch.nn.functional.pad(wave, (200, 200)).unfold(0, 400, 320).abs().mean(-1)
    assert got.shape == (n_features(wave.numel()), 80) == (51, 80) and adapter.dim == 80
    assert torch.allclose(got[:, 0], expected[:51], atol=1e-6)

    feats = nodes.OmniHumanAudioEncoder().encode(speech(2.0), model, "mel (built-in)",
                                                 audio_encoder=FakeCoreAudioEncoder())[0]
    assert feats.frames.shape == (16, 1, 80) and feats.encoder == "ComfyUI audio encoder"
