"""The CLIP visual tower: Wan key mapping, penultimate features, preprocessing. Fixture: ../shared/parity/clip."""

import json

import pytest
import torch
from parity import default_fixture_root
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.loading import WeightsError
from infinitetalk_engine.infinitetalk.models.image_encoder import (
    CLIP_MEAN,
    CLIP_STD,
    ClipVisionArgs,
    encode_image,
    load_clip_visual,
    preprocess,
)

CLIP = default_fixture_root() / "clip"


@pytest.fixture(scope="module")
def args():
    return ClipVisionArgs.from_fixture_config(CLIP / "config.json")


@pytest.fixture(scope="module")
def fixture():
    return load_file(CLIP / "tensors.safetensors")


@pytest.fixture(scope="module")
def model(args):
    return load_clip_visual(CLIP / "weights.safetensors", args, dtype=torch.float32)


def test_preset_is_the_full_size_vit_h_14_of_the_fixture_notes():
    full = json.loads((CLIP / "config.json").read_text())["full_size_equivalent"]
    assert ClipVisionArgs.vit_h_14() == ClipVisionArgs.from_wan_kwargs(full)


def test_the_model_stops_one_block_early(args, model):
    assert len(model.encoder.layers) == args.num_layers - 1


def test_features_are_the_penultimate_block_not_the_last(model, fixture):
    features = encode_image(model, fixture["image"][:, :, 0])
    assert features.shape == fixture["features_penultimate"].shape
    assert (features - fixture["features_penultimate"]).abs().max() < 1e-4
    assert (features - fixture["features_all_blocks"]).abs().max() > 1e-2


def test_text_tower_and_projection_keys_are_ignored(args, model, fixture):
    # Given the full Wan checkpoint layout: visual tower plus a text tower and a logit scale
    state = load_file(CLIP / "weights.safetensors")
    state.update({"textual.token_embedding.weight": torch.zeros(4, 2), "log_scale": torch.zeros(())})
    # Then it loads into the same model
    loaded = load_clip_visual(state, args, dtype=torch.float32)
    frame = fixture["image"][:, :, 0]
    assert torch.equal(encode_image(loaded, frame), encode_image(model, frame))


def test_an_unknown_visual_key_fails_loading(args):
    state = load_file(CLIP / "weights.safetensors")
    state["visual.extra"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="unexpected 1"):
        load_clip_visual(state, args, dtype=torch.float32)


def test_preprocessing_resizes_to_224_and_normalises():
    black = -torch.ones(1, 3, 64, 96)  # [-1, 1] frame -> 0 after x*0.5+0.5
    pixels = preprocess(black)
    assert pixels.shape == (1, 3, 224, 224)
    expected = torch.tensor([-m / s for m, s in zip(CLIP_MEAN, CLIP_STD, strict=True)])
    assert torch.allclose(pixels[0, :, 100, 100], expected)


def test_half_precision_model_returns_half_features(args, fixture):
    model = load_clip_visual(CLIP / "weights.safetensors", args, dtype=torch.bfloat16)
    features = encode_image(model, fixture["image"][:, :, 0])
    assert features.dtype == torch.bfloat16
    assert (features.float() - fixture["features_penultimate"]).abs().max() < 0.2
