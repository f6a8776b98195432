"""The Wan VAE on diffusers: loading from Wan keys, latent normalisation, shapes. Fixture: ../shared/parity/vae."""

import json

import pytest
import torch
from parity import default_fixture_root
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.loading import WeightsError
from infinitetalk_engine.infinitetalk.models.vae import VaeArgs, load_vae

VAE = default_fixture_root() / "vae"


@pytest.fixture(scope="module")
def args():
    return VaeArgs.from_fixture_config(VAE / "config.json")


@pytest.fixture(scope="module")
def vae(args):
    return load_vae(VAE / "weights.safetensors", args)


@pytest.fixture(scope="module")
def fixture():
    return load_file(VAE / "tensors.safetensors")


@pytest.fixture(scope="module")
def latent(vae, fixture):
    return vae.encode(fixture["video"])


def test_preset_is_wan21_with_its_latent_constants():
    config = json.loads((VAE / "config.json").read_text())
    full = config["full_size_equivalent"]
    preset = VaeArgs.wan21()
    assert (preset.base_dim, list(preset.dim_mult), preset.num_res_blocks, list(preset.temporal_downsample)) == (
        full["dim"],
        full["dim_mult"],
        full["num_res_blocks"],
        full["temperal_downsample"],
    )
    assert list(preset.latents_mean) == config["latents_mean"]
    assert list(preset.latents_std) == config["latents_std"]


def test_encode_gives_one_latent_frame_per_four_video_frames_plus_one(latent):
    assert latent.shape == (16, 3, 4, 4) and latent.dtype == torch.float32


def test_latents_are_normalised_with_the_per_channel_constants(vae, args, fixture, latent):
    raw = vae.model.encode(fixture["video"][None]).latent_dist.mean[0]
    mean = torch.tensor(args.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(args.latents_std).view(-1, 1, 1, 1)
    assert torch.allclose(latent, (raw - mean) / std, atol=1e-6)


def test_encoding_is_causal_the_first_latent_frame_sees_only_the_first_video_frame(vae, fixture, latent):
    first = vae.encode(fixture["video"][:, :1])
    assert torch.allclose(latent[:, :1], first, atol=1e-6)


def test_frame_counts_other_than_1_plus_4k_are_refused(vae, fixture):
    with pytest.raises(AssertionError, match="1 \\+ 4k"):
        vae.encode(fixture["video"][:, :3])


def test_decode_returns_clamped_video_of_the_original_length(vae, fixture):
    video = vae.decode(fixture["latent"][:, :2] * 50)  # far out of range: the output must still be in [-1, 1]
    assert video.shape == (3, 5, 32, 32)
    assert video.min() >= -1 and video.max() <= 1


def test_the_unclamped_decode_is_the_decoders_output_before_the_clamp(vae, fixture):
    loud = fixture["latent"] * 40  # pushes the decoded values far outside [-1, 1]
    unclamped = vae.decode(loud, clamp=False)
    assert unclamped.abs().max() > 1
    assert unclamped.shape == vae.decode(loud).shape
    assert torch.equal(unclamped.clamp(-1, 1), vae.decode(loud))


def test_tiled_decode_is_opt_in_and_keeps_the_shape(args, fixture):
    vae = load_vae(VAE / "weights.safetensors", args)
    assert not vae.model.use_tiling
    vae.enable_tiling(tile_size=24, tile_stride=16)
    assert vae.model.use_tiling and vae.model.tile_sample_min_height == 24
    assert vae.decode(fixture["latent"][:, :1]).shape == (3, 1, 32, 32)


def test_a_pth_checkpoint_with_a_missing_key_fails_naming_it(tmp_path, args):
    state = load_file(VAE / "weights.safetensors")
    state.pop("conv1.weight")
    path = tmp_path / "Wan2.1_VAE.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as error:
        load_vae(path, args)
    assert str(path) in str(error.value) and "quant_conv.weight" in str(error.value)
