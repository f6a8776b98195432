"""Specifications of the LightX2V LoRA merge beyond the parity fixture (which pins the numbers)."""

import pytest
import torch
from parity import default_fixture_root
from safetensors.torch import load_file, save_file

from infinitetalk_engine.infinitetalk.loading import WeightsError
from infinitetalk_engine.infinitetalk.lora import LoraWeights, merge_lora

g = torch.Generator().manual_seed(7)
W = torch.randn(6, 5, generator=g)
B = torch.randn(6, generator=g)
DOWN, UP = torch.randn(2, 5, generator=g), torch.randn(6, 2, generator=g)
DIFF, DIFF_B = torch.randn(6, 5, generator=g), torch.randn(6, generator=g)
BASE = {"blocks.0.ffn.0.weight": W, "blocks.0.ffn.0.bias": B, "blocks.0.norm3.weight": B.clone()}


def test_low_rank_term_is_up_times_down_times_scale_with_alpha_ignored():
    lora = {
        "diffusion_model.blocks.0.ffn.0.lora_down.weight": DOWN,
        "diffusion_model.blocks.0.ffn.0.lora_up.weight": UP,
        "diffusion_model.blocks.0.ffn.0.alpha": torch.tensor(8.0),
    }
    merged, report = merge_lora(BASE, lora, scale=1.2)
    assert torch.equal(merged["blocks.0.ffn.0.weight"], W + (UP @ DOWN) * 1.2)
    assert report.changed == ["blocks.0.ffn.0.weight"]
    assert "alpha" in report.ignored["diffusion_model.blocks.0.ffn.0.alpha"]


def test_diff_goes_to_weight_and_diff_b_to_bias():
    lora = {
        "diffusion_model.blocks.0.ffn.0.diff": DIFF,
        "diffusion_model.blocks.0.ffn.0.diff_b": DIFF_B,
        "diffusion_model.blocks.0.norm3.diff": B,
    }
    merged, report = merge_lora(BASE, lora, scale=0.5)
    assert torch.equal(merged["blocks.0.ffn.0.weight"], W + DIFF * 0.5)
    assert torch.equal(merged["blocks.0.ffn.0.bias"], B + DIFF_B * 0.5)
    assert torch.equal(merged["blocks.0.norm3.weight"], B + B * 0.5)
    assert report.changed == sorted(BASE)


def test_fixture_file_reports_what_upstream_ignores():
    lora = load_file(default_fixture_root() / "lora" / "lora.safetensors")
    ignored = LoraWeights.from_state_dict(lora).ignored
    assert ignored["blocks.1.self_attn.o.lora_down.weight"] == "no 'diffusion_model.' prefix"
    assert "PEFT" in ignored["diffusion_model.blocks.1.ffn.2.lora_A.weight"]
    assert "PEFT" in ignored["diffusion_model.blocks.1.ffn.2.lora_B.weight"]
    assert all(key in ignored for key in lora if key.endswith(".alpha"))


def test_untouched_tensors_are_shared_and_inputs_never_modified():
    before = W.clone()
    merged, _ = merge_lora(BASE, {"diffusion_model.blocks.0.ffn.0.diff": DIFF}, scale=1.0)
    assert merged["blocks.0.ffn.0.bias"] is B
    assert torch.equal(W, before)


def test_streaming_merge_keeps_the_base_dtype_and_sums_in_float32():
    lora = LoraWeights.from_state_dict(
        {
            "diffusion_model.blocks.0.ffn.0.lora_down.weight": DOWN.bfloat16(),
            "diffusion_model.blocks.0.ffn.0.lora_up.weight": UP.bfloat16(),
        }
    )
    merged = lora.merge_into("blocks.0.ffn.0.weight", W.bfloat16(), scale=1.0)
    expected = (W.bfloat16().float() + UP.bfloat16().float() @ DOWN.bfloat16().float()).bfloat16()
    assert merged.dtype == torch.bfloat16 and torch.equal(merged, expected)
    assert lora.merge_into("blocks.0.ffn.0.bias", B, scale=1.0) is B
    assert lora.unapplied() == []


def test_targets_missing_from_the_base_are_reported():
    # Upstream rewrites a diff's suffix to `.weight`, so a diff on the bare `modulation` parameter matches nothing.
    _, report = merge_lora(BASE, {"diffusion_model.blocks.0.modulation.diff": torch.zeros(1, 6, 5)}, scale=1.0)
    assert report.unapplied == ["blocks.0.modulation.weight"] and report.changed == []


def test_mismatched_shapes_fail_with_load_failed():
    with pytest.raises(WeightsError) as error:
        merge_lora(BASE, {"diffusion_model.blocks.0.ffn.0.diff": torch.zeros(5, 6)}, scale=1.0)
    assert "blocks.0.ffn.0.weight" in str(error.value)


def test_from_file_reads_lazily_and_names_a_bad_file(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"diffusion_model.blocks.0.ffn.0.diff": DIFF}, str(path))
    lora = LoraWeights.from_file(path)
    assert lora.targets() == {"blocks.0.ffn.0.weight"}
    assert torch.equal(lora.merge_into("blocks.0.ffn.0.weight", W, 2.0), W + DIFF * 2.0)
    with pytest.raises(WeightsError) as error:
        LoraWeights.from_file(tmp_path / "missing.safetensors")
    assert "missing.safetensors" in str(error.value)
