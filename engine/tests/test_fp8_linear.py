"""fp8 linear weights: float8 e4m3 with a float32 scale per output channel, dequantised into the compute dtype."""

import torch
from torch import nn

from infinitetalk_engine.infinitetalk.models.fp8_linear import FP8, Fp8Linear, compute_dtype_of, quantize_linears


def linear(rows_scale: list[float], inputs: int = 64) -> nn.Linear:
    layer = nn.Linear(inputs, len(rows_scale))
    with torch.no_grad():
        layer.weight.copy_(torch.randn(len(rows_scale), inputs, generator=torch.Generator().manual_seed(0)))
        layer.weight.mul_(torch.tensor(rows_scale)[:, None])
    return layer


def test_each_output_channel_uses_the_whole_fp8_range_so_small_rows_keep_their_precision():
    # Rows of very different magnitude: one scale per row keeps the small row as precise (relatively) as the big one
    layer = linear([1e-3, 1.0, 1e3])
    fp8 = Fp8Linear.quantize(layer, torch.float32)
    assert fp8.weight.dtype == FP8 and fp8.scale.dtype == torch.float32
    relative = (fp8.dequantized() - layer.weight).abs().amax(dim=1) / layer.weight.abs().amax(dim=1)
    assert (relative <= 2**-4).all()  # e4m3: 3 mantissa bits, rounding error at most half a step (1/16 relative)


def test_the_forward_is_the_dequantised_linear_in_the_compute_dtype():
    layer = linear([0.5, 2.0, 1.0, 0.1])
    x = torch.randn(5, 64)
    for dtype in (torch.float32, torch.bfloat16):
        fp8 = Fp8Linear.quantize(layer, dtype)
        out = fp8(x)
        assert out.dtype == dtype
        expected = nn.functional.linear(x.to(dtype), fp8.dequantized(), layer.bias.to(dtype))
        assert torch.equal(out, expected)
        assert compute_dtype_of(fp8) == dtype and compute_dtype_of(layer) == torch.float32


def test_quantize_linears_replaces_every_linear_and_nothing_else():
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Sequential(nn.Linear(8, 4), nn.GELU()))
    assert quantize_linears(model, torch.float32) == 2
    assert [type(m).__name__ for m in model.modules()].count("Fp8Linear") == 2
    assert isinstance(model[1], nn.LayerNorm)
    assert model(torch.randn(3, 8)).shape == (3, 4)


def test_fp8_halves_the_weight_memory_of_bf16():
    layer = linear([1.0] * 256, inputs=256).to(torch.bfloat16)
    fp8 = Fp8Linear.quantize(layer, torch.bfloat16)
    bf16_bytes = layer.weight.numel() * layer.weight.element_size()
    fp8_bytes = fp8.weight.numel() * fp8.weight.element_size() + fp8.scale.numel() * fp8.scale.element_size()
    assert fp8_bytes <= bf16_bytes * 0.51


def test_the_streaming_loader_fills_fp8_layers_as_a_whole_load_then_quantise_would():
    # Given the fixture DiT loaded whole then quantised, and the same DiT streamed into fp8 layers
    from parity import default_fixture_root
    from parity.dit import fixture_config

    from infinitetalk_engine.infinitetalk.loading import parameters_on_meta
    from infinitetalk_engine.infinitetalk.models.transformer import InfiniteTalkTransformer
    from infinitetalk_engine.infinitetalk.models.transformer_weights import load_transformer

    weights = default_fixture_root() / "dit" / "weights.safetensors"
    config = fixture_config(default_fixture_root())
    with parameters_on_meta():
        whole, streamed = InfiniteTalkTransformer(config), InfiniteTalkTransformer(config)
    load_transformer(whole, [weights], device="cpu").raise_if_incomplete([weights])
    replaced = whole.quantize_blocks_to_fp8()
    assert streamed.expect_fp8_blocks(torch.float32) == replaced > 0
    # When streaming, every tensor is accounted for (the scales too) and each fp8 layer equals the quantised one
    load_transformer(streamed, [weights], device="cpu").raise_if_incomplete([weights])
    ours, theirs = streamed.state_dict(), whole.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k].float(), theirs[k].float()) for k in ours)
    # The audio adapter stays unquantised (it is switched between one and two speakers)
    assert all(
        type(m).__name__ == "Linear"
        for m in streamed.blocks[0].audio_cross_attn.modules()
        if "Linear" in type(m).__name__
    )
