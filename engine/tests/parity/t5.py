"""Parity: the umT5 encoder loaded from Wan's T5 key names (`t5/`, README §4)."""

from __future__ import annotations

from pathlib import Path

import torch

from infinitetalk_engine.infinitetalk.models.text_encoder import (
    T5EncoderArgs,
    encode_tokens,
    load_t5_encoder,
    position_bias,
    relative_position_buckets,
    trim_to_mask,
)

from ._compare import tensor_checks

TOLERANCE = 1e-4  # README table: T5 in fp32


def _ours(folder: Path, fixture: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    model = load_t5_encoder(
        folder / "weights.safetensors", T5EncoderArgs.from_fixture_config(folder / "config.json"), dtype=torch.float32
    )
    out = encode_tokens(model, fixture["ids"], fixture["mask"])
    prompt, negative = trim_to_mask(out, fixture["mask"])
    buckets_size = fixture["rel_bucket_160"].shape[0]
    bias_size = fixture["block0_pos_bias_12"].shape[-1]
    return {
        "encoder_out_full": out,
        "context_prompt": prompt,
        "context_negative": negative,
        "rel_bucket_160": relative_position_buckets(model, buckets_size),
        "block0_pos_bias_12": position_bias(model, 0, bias_size),
    }


NAMES = ("encoder_out_full", "context_prompt", "context_negative", "rel_bucket_160", "block0_pos_bias_12")
CHECKS = tensor_checks("t5", _ours, {name: 0.0 if name == "rel_bucket_160" else TOLERANCE for name in NAMES})
