"""Switching between the one- and two-speaker audio adapters on a loaded model (tiny weights, CPU)."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_weights import write_tiny_weights

from infinitetalk_engine.infinitetalk.model_set import ModelSetOptions, load_model_set
from infinitetalk_engine.infinitetalk.models.transformer_weights import model_key
from infinitetalk_engine.infinitetalk.weights import WeightsLayout

# A DiT tensor outside the adapter that the two-speaker file also carries (a fine-tuned copy), which the
# one-speaker file does not name.
SHARED_KEY = "blocks.0.norm3.weight"


@pytest.mark.parametrize("profile", ["resident", "fp8", "offload"])
def test_going_back_to_one_speaker_restores_every_tensor_the_two_speaker_file_replaced(tmp_path, profile):
    # Given a two-speaker file that also replaces a DiT tensor the single file does not name
    root = write_tiny_weights(tmp_path)
    multi_path = root / "InfiniteTalk" / "multi" / "infinitetalk.safetensors"
    multi = load_file(multi_path)
    base = next(
        load_file(p) for p in (root / "Wan2.1-I2V-14B-480P").glob("*.safetensors") if SHARED_KEY in load_file(p)
    )
    multi[SHARED_KEY] = base[SHARED_KEY] + 1.0
    save_file(multi, multi_path)
    options = ModelSetOptions(device="cpu", use_lora=False, two_speakers=True, memory_profile=profile)
    models = load_model_set(WeightsLayout(root), options)
    params = lambda: {name: p.detach().clone() for name, p in models.dit.named_parameters()}  # noqa: E731
    one_speaker = params()
    # When the model switches to two speakers and back
    models.use_adapter("multi")
    two_speakers = params()
    models.use_adapter("single")
    # Then the shared tensor was the two-speaker file's, and every tensor is the one-speaker model's again
    name = model_key(SHARED_KEY)
    assert torch.equal(two_speakers[name], base[SHARED_KEY] + 1.0)
    back = params()
    assert all(torch.equal(back[k], one_speaker[k]) for k in one_speaker)
    assert torch.equal(back[name], base[SHARED_KEY])
