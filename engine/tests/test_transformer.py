"""Specifications of the InfiniteTalk DiT beyond the parity fixtures: structure, config, dtype policy, audio
routing, weight loading. Tiny random models on CPU; numbers come from the model, never from fixtures."""

import dataclasses
import json

import pytest
import torch
from diffusers import WanTransformer3DModel
from parity import default_fixture_root
from parity.dit import fixture_config as parity_fixture_config
from parity.dit import load_model
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.loading import WeightsError, parameters_on_meta
from infinitetalk_engine.infinitetalk.models import transformer_block
from infinitetalk_engine.infinitetalk.models.audio_attention import AudioCrossAttention
from infinitetalk_engine.infinitetalk.models.audio_projection import AudioProjection
from infinitetalk_engine.infinitetalk.models.speaker_routing import reference_attention_map, speaker_positions
from infinitetalk_engine.infinitetalk.models.transformer import InfiniteTalkTransformer, keeps_fp32
from infinitetalk_engine.infinitetalk.models.transformer_config import TransformerConfig
from infinitetalk_engine.infinitetalk.models.transformer_weights import load_transformer, model_key

TINY = TransformerConfig(
    dim=32,
    ffn_dim=64,
    num_heads=2,
    num_layers=2,
    text_dim=16,
    clip_dim=24,
    audio_layers=3,
    audio_channels=4,
    audio_intermediate_dim=16,
    audio_dim=8,
    audio_tokens=4,
)
FRAMES, T_LAT, H_LAT, W_LAT = 17, 5, 4, 6  # 17 video frames -> 5 latent frames; 2x3 tokens per frame
AUDIO_KEYS = ("audio_proj.", ".norm_x.", ".audio_cross_attn.")


def make_model(config=TINY, seed=0):
    torch.manual_seed(seed)
    model = InfiniteTalkTransformer(config).eval()
    with torch.no_grad():  # non-trivial norms, biases and head (their default inits are 1/0)
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def make_inputs(config=TINY, speakers=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(3, H_LAT, W_LAT)
    masks[0, :, : W_LAT // 2] = 1
    masks[1, :, W_LAT // 2 :] = 1
    masks[2, 0] = 1  # background row overlapping the persons, as real masks may
    return {
        "x": torch.randn(config.out_dim, T_LAT, H_LAT, W_LAT, generator=g),
        "timestep": torch.tensor([933.4267]),
        "text_context": torch.randn(7, config.text_dim, generator=g),
        "clip_features": torch.randn(1, config.clip_tokens, config.clip_dim, generator=g),
        "y": torch.randn(config.in_dim - config.out_dim, T_LAT, H_LAT, W_LAT, generator=g),
        "windows": torch.randn(
            speakers, FRAMES, config.audio_window, config.audio_layers, config.audio_channels, generator=g
        ),
        "ref_target_masks": masks,
    }


def run(model, inputs, windows=None, **overrides):
    args = {k: v for k, v in inputs.items() if k != "windows"}
    args["audio_tokens"] = model.project_audio(inputs["windows"] if windows is None else windows)
    args.update(overrides)
    return model(**args)


# 1. Structure and config ------------------------------------------------------------------------------------------


def test_non_audio_parameters_are_exactly_diffusers_wan_transformer():
    ours = {k: v.shape for k, v in make_model().state_dict().items() if not any(a in k for a in AUDIO_KEYS)}
    wan = WanTransformer3DModel(
        num_attention_heads=TINY.num_heads,
        attention_head_dim=TINY.head_dim,
        in_channels=TINY.in_dim,
        out_channels=TINY.out_dim,
        text_dim=TINY.text_dim,
        ffn_dim=TINY.ffn_dim,
        num_layers=TINY.num_layers,
        image_dim=TINY.clip_dim,
        added_kv_proj_dim=TINY.dim,
    )
    assert ours == {k: v.shape for k, v in wan.state_dict().items()}


def test_released_wan_config_json_maps_to_the_14b_preset():
    released = {
        "_class_name": "WanModel",
        "_diffusers_version": "0.30.0",
        "dim": 5120,
        "eps": 1e-06,
        "ffn_dim": 13824,
        "freq_dim": 256,
        "in_dim": 36,
        "model_type": "i2v",
        "num_heads": 40,
        "num_layers": 40,
        "out_dim": 16,
        "text_len": 512,
    }
    preset = TransformerConfig.infinitetalk_14b()
    assert TransformerConfig.from_wan_config(released) == preset
    assert (preset.head_dim, preset.audio_tokens, preset.audio_dim, preset.audio_intermediate_dim) == (
        128,
        32,
        768,
        512,
    )


def test_fixture_config_reads_reduced_audio_sizes():
    raw = json.loads((default_fixture_root() / "dit" / "config.json").read_text())
    config = fixture_config()
    assert config.audio_channels == raw["audio_proj_channels"]
    assert config.audio_tokens == raw["wan_model_kwargs"]["context_tokens"]
    assert config.patch_size == tuple(raw["wan_model_kwargs"]["patch_size"])


@pytest.mark.parametrize(
    "config, words",
    [
        ({"dim": 64, "mystery": 1}, "unknown key 'mystery'"),
        ({"model_type": "t2v"}, "model_type"),
        ({"window_size": [16, 16]}, "window_size"),
        ({"dim": 30, "num_heads": 4}, "not divisible"),
    ],
)
def test_config_refuses_what_it_cannot_run(config, words):
    with pytest.raises(ValueError) as error:
        TransformerConfig.from_wan_config(config)
    assert words in str(error.value)


# 2. Forward: shapes, dtype policy, inputs ------------------------------------------------------------------------


def test_forward_returns_float32_velocity_shaped_like_the_latent():
    model, inputs = make_model(), make_inputs()
    out = run(model, inputs)
    assert out.shape == inputs["x"].shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_project_audio_gives_tokens_per_latent_frame():
    tokens = make_model().project_audio(make_inputs(speakers=2)["windows"])
    assert tokens.shape == (2, T_LAT, TINY.audio_tokens, TINY.audio_dim)


def test_bf16_keeps_upstream_fp32_parts_and_stays_close_to_fp32():
    model, inputs = make_model(), make_inputs()
    reference = run(model, inputs)
    model.cast_for_inference(torch.bfloat16)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["condition_embedder.time_embedder.linear_1.weight"] == torch.float32
    assert dtypes["condition_embedder.time_proj.weight"] == torch.float32
    assert dtypes["blocks.0.scale_shift_table"] == torch.float32 and dtypes["scale_shift_table"] == torch.float32
    assert dtypes["proj_out.weight"] == torch.float32
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.bfloat16
    assert dtypes["blocks.1.audio_cross_attn.kv_linear.weight"] == torch.bfloat16
    assert all(keeps_fp32(n) == (d == torch.float32) for n, d in dtypes.items())
    assert model.rope.freqs_cos.dtype == torch.float32
    out = run(model, inputs)
    assert out.dtype == torch.float32
    assert (out - reference).abs().max() < 0.05 * reference.abs().max()


def test_text_context_may_be_batched_or_not_and_is_zero_padded():
    model, inputs = make_model(), make_inputs()
    flat = run(model, inputs)
    batched = run(model, inputs, text_context=inputs["text_context"][None])
    padded = torch.cat([inputs["text_context"], torch.zeros(3, TINY.text_dim)])
    assert torch.equal(flat, batched)
    assert torch.allclose(flat, run(model, inputs, text_context=padded), atol=1e-6)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"y": torch.zeros(16, T_LAT, H_LAT, W_LAT)}, "y must be"),
        ({"x": torch.zeros(16, T_LAT, 5, W_LAT), "y": torch.zeros(20, T_LAT, 5, W_LAT)}, "multiple of the patch"),
        ({"audio_tokens": torch.zeros(1, T_LAT - 1, 4, 8)}, "audio_tokens must be"),
        ({"audio_tokens": torch.zeros(3, T_LAT, 4, 8)}, "1 or 2 speakers"),
        ({"audio_tokens": torch.zeros(2, T_LAT, 4, 8), "ref_target_masks": None}, "need ref_target_masks"),
        ({"text_context": torch.zeros(513, 16)}, "more than text_len"),
    ],
)
def test_bad_inputs_get_clear_errors(change, words):
    with pytest.raises(ValueError, match=words):
        run(make_model(), make_inputs(), **change)


def test_audio_windows_must_have_the_configured_layout():
    projection = AudioProjection(TINY)
    with pytest.raises(ValueError, match="audio windows must be"):
        projection(torch.zeros(1, 18, 5, 3, 4))  # 18 frames is not 1 + 4n
    with pytest.raises(ValueError, match="audio windows must be"):
        projection(torch.zeros(1, 17, 5, 12, 4))  # wrong layer count


# 3. Audio: projection slots, frame locality, speaker routing -----------------------------------------------------


def changed_latent_frames(projection, frame, slot):
    g = torch.Generator().manual_seed(3)
    windows = torch.randn(1, FRAMES, 5, TINY.audio_layers, TINY.audio_channels, generator=g)
    before = projection(windows)
    windows[0, frame, slot] += 1.0
    return [t for t in range(T_LAT) if not torch.equal(before[0, t], projection(windows)[0, t])]


@pytest.mark.parametrize(
    "frame, slot, latent_frames",
    [
        (0, 0, [0]),
        (0, 4, [0]),  # latent frame 0: whole window of video frame 0
        (1, 0, [1]),
        (1, 2, [1]),
        (1, 3, []),  # first frame of a group: offsets -2..0 only
        (2, 2, [1]),
        (2, 1, []),
        (3, 3, []),  # middle frames: the centre only
        (4, 2, [1]),
        (4, 4, [1]),
        (4, 1, []),  # last frame of a group: offsets 0..+2 only
        (16, 4, [4]),
        (13, 0, [4]),
    ],
)
def test_audio_projection_reads_upstream_window_slots(frame, slot, latent_frames):
    torch.manual_seed(0)
    assert changed_latent_frames(AudioProjection(TINY).eval(), frame, slot) == latent_frames


@pytest.mark.parametrize("speakers", [1, 2])
def test_audio_attention_is_frame_local(speakers):
    torch.manual_seed(0)
    attention = AudioCrossAttention(TINY.dim, TINY.audio_dim, TINY.num_heads)
    per_frame = 6
    x = torch.randn(1, T_LAT * per_frame, TINY.dim)
    tokens = torch.randn(speakers, T_LAT, TINY.audio_tokens, TINY.audio_dim)
    positions = torch.rand(T_LAT * per_frame) * 24 if speakers == 2 else None
    before = attention(x, tokens, positions)
    tokens[-1, 2] += 1.0
    changed = (attention(x, tokens, positions) - before).abs().amax(dim=2)[0].view(T_LAT, per_frame) > 0
    assert changed[2].all() and not changed[[0, 1, 3, 4]].any()


def test_two_speakers_use_both_streams_and_their_order():
    model, inputs = make_model(), make_inputs(speakers=2)
    out = run(model, inputs)
    for speaker in (0, 1):
        windows = inputs["windows"].clone()
        windows[speaker] += 1.0
        assert not torch.allclose(out, run(model, inputs, windows=windows), atol=1e-3)
    # Speaker 1 is routed to person mask 1: swapping only the streams changes the video.
    assert not torch.allclose(out, run(model, inputs, windows=inputs["windows"].flip(0)), atol=1e-3)


def test_single_speaker_skips_the_reference_map(monkeypatch):
    model, inputs = make_model(), make_inputs()
    with_masks = run(model, inputs)

    def forbidden(*args):
        raise AssertionError("the reference map is only needed for two speakers")

    monkeypatch.setattr(transformer_block, "reference_attention_map", forbidden)
    assert torch.equal(with_masks, run(model, inputs, ref_target_masks=None))


def test_reference_map_is_mask_weighted_attention_mass_on_the_first_frame():
    g = torch.Generator().manual_seed(5)
    heads, length, ref, dim = 3, 12, 4, 8  # odd head count: upstream drops the last head
    q, k = torch.randn(1, length, heads, dim, generator=g), torch.randn(1, length, heads, dim, generator=g)
    masks = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]])
    probs = torch.softmax(torch.einsum("blhd,bmhd->bhlm", q, k[:, :ref]) / dim**0.5, dim=-1)[0, :2]
    explicit = torch.stack([(probs * m).sum(-1) / m.sum() for m in masks]).mean(1)
    assert torch.allclose(reference_attention_map(q, k, masks), explicit, atol=1e-6)


def test_speaker_positions_scale_each_person_into_its_range():
    ref_map = torch.tensor(
        [
            [0.9, 0.5, 0.1, 0.2],  # person 1
            [0.1, 0.2, 0.8, 0.3],  # person 2
            [0.0, 0.0, 0.0, 0.4],
        ]
    )  # background
    positions = speaker_positions(ref_map)
    scaled_1 = (0.9 - 0.1) / (0.9 - 0.1 + 1e-8) * 4
    scaled_1b = (0.5 - 0.1) / (0.9 - 0.1 + 1e-8) * 4
    scaled_2 = 20 + (0.8 - 0.1) / (0.8 - 0.1 + 1e-8) * 4
    assert torch.allclose(positions, torch.tensor([scaled_1, scaled_1b, scaled_2, 12.0]), atol=1e-5)


# 4. Loading Wan-format weights -----------------------------------------------------------------------------------


def fixture_weights():
    return load_file(default_fixture_root() / "dit" / "weights.safetensors")


def fixture_config():
    return parity_fixture_config(default_fixture_root())


def fixture_model():
    return load_model(default_fixture_root())


def meta_model(config=None):
    with parameters_on_meta():
        return InfiniteTalkTransformer(config or fixture_config())


def test_wan_keys_map_to_diffusers_names_and_audio_keys_keep_theirs():
    assert model_key("blocks.3.self_attn.q.weight") == "blocks.3.attn1.to_q.weight"
    assert model_key("blocks.3.cross_attn.k_img.bias") == "blocks.3.attn2.add_k_proj.bias"
    assert model_key("blocks.3.norm3.weight") == "blocks.3.norm2.weight"  # Wan's affine cross-attn norm
    assert model_key("blocks.3.modulation") == "blocks.3.scale_shift_table"
    assert model_key("head.head.weight") == "proj_out.weight"
    assert model_key("model.diffusion_model.patch_embedding.bias") == "patch_embedding.bias"
    assert model_key("blocks.3.audio_cross_attn.kv_linear.weight") == "blocks.3.audio_cross_attn.kv_linear.weight"
    assert model_key("blocks.3.norm_x.bias") == "blocks.3.norm_x.bias"
    assert model_key("audio_proj.norm.weight") == "audio_proj.norm.weight"


def test_streaming_load_onto_meta_model_in_bf16():
    weights = fixture_weights()
    model = meta_model()
    report = load_transformer(model, [dict(sorted(weights.items()))], device="cpu", dtype=torch.bfloat16)
    report.raise_if_incomplete([weights])
    assert report.loaded == len(weights) and not report.overridden
    params = dict(model.named_parameters())
    assert not any(p.is_meta for p in params.values()) and not model.rope.freqs_cos.is_meta
    assert params["blocks.0.attn1.to_q.weight"].dtype == torch.bfloat16
    assert params["blocks.0.scale_shift_table"].dtype == torch.float32
    assert torch.equal(params["blocks.1.norm_x.weight"], weights["blocks.1.norm_x.weight"].bfloat16())


def test_loader_accounts_for_missing_unexpected_and_overridden_keys():
    weights = fixture_weights()
    dropped = weights.pop("blocks.1.audio_cross_attn.proj.bias")
    weights["diffusion_model.blocks.0.self_attn.q.weight"] = weights["blocks.0.self_attn.q.weight"]
    adapter = {"blocks.0.norm_x.weight": weights["blocks.0.norm_x.weight"]}  # overriding the base
    report = load_transformer(meta_model(), [weights, adapter], device="cpu")
    assert report.missing == ["blocks.1.audio_cross_attn.proj.bias"]
    assert len(report.unexpected) == 1 and "diffusion_model.blocks.0.self_attn.q.weight" in report.unexpected[0]
    assert report.overridden == ["blocks.0.norm_x.weight"]
    with pytest.raises(WeightsError) as error:
        report.raise_if_incomplete([weights, adapter])
    assert "blocks.1.audio_cross_attn.proj.bias" in str(error.value)
    assert dropped.shape == (fixture_config().dim,)


def test_shape_mismatch_names_the_key():
    model = meta_model(dataclasses.replace(fixture_config(), ffn_dim=64))
    weights = fixture_weights()
    report = load_transformer(model, [weights], device="cpu")
    with pytest.raises(WeightsError, match=r"blocks\.0\.ffn\.0\.(weight|bias) -> \S+ has shape"):
        report.raise_if_incomplete([weights])


# 5. Inside the upstream sampler ----------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [0, 1])
def test_reproduces_the_upstream_pipeline_predictions_of_a_step(clip):
    """The three guidance passes of the recorded tiny pipeline run (clip 1 carries 2 clean motion latents):
    cond = prompt + audio, drop_text = negative prompt + audio, uncond = negative prompt + null audio."""
    root = default_fixture_root()
    model = fixture_model()
    run_ = load_file(root / "pipeline" / "tensors.safetensors")
    texts = load_file(root / "t5" / "tensors.safetensors")
    clip_features = load_file(root / "dit" / "single" / "inputs.safetensors")["clip_fea"]
    audio = run_[f"clip{clip}_audio"]
    passes = {
        "cond": (texts["context_prompt"], audio),
        "drop_text": (texts["context_negative"], audio),
        "uncond": (texts["context_negative"], torch.zeros_like(audio)[-1:]),
    }
    for name, (text, windows) in passes.items():
        out = model(
            run_[f"clip{clip}_step0_latent_in"],
            run_[f"clip{clip}_step0_t"],
            text,
            clip_features,
            run_[f"clip{clip}_y"],
            model.project_audio(windows),
            run_[f"clip{clip}_ref_target_masks"],
        )
        assert (out - run_[f"clip{clip}_step0_pred_{name}"]).abs().max() < 1e-4, name
