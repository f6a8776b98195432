"""Loading Wan-format DiT weights (base shards, InfiniteTalk adapter, LoRA-merged tensors) into
`InfiniteTalkTransformer`, one tensor at a time, with strict key accounting (through `loading.stream_into`).

Key names: audio-adapter keys (`audio_proj.*`, `blocks.N.audio_cross_attn.*`, `blocks.N.norm_x.*`) keep their Wan
names. Every other key goes through diffusers' `convert_wan_transformer_to_diffusers`, one key at a time (it pops
the keys of the dict it is given, and it would rename `audio_cross_attn` to `audio_attn2`, so audio keys never go
through it). A `model.diffusion_model.` prefix is stripped by the converter; other prefixes are unexpected keys.

Streaming load (host RAM stays near one tensor; the device holds the bf16 model):

    with parameters_on_meta():
        model = InfiniteTalkTransformer(config)
    report = load_transformer(model, [*shards, adapter], device="cuda", dtype=torch.bfloat16,
                              transform=lambda key, t: lora.merge_into(key, t, scale))   # optional, see lora.py
    report.raise_if_incomplete(shards)       # WeightsError naming the files unless every tensor fits

A key given twice (the adapter overriding a base key) keeps the last tensor and is listed in `report.overridden`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

from ..loading import LoadReport, WeightsSource, stream_into
from .transformer import InfiniteTalkTransformer, keeps_fp32

AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")


@functools.cache
def model_key(wan_key: str) -> str:
    """The model's parameter name for a Wan checkpoint key."""
    if AUDIO_KEY.match(wan_key):
        return wan_key
    (converted,) = convert_wan_transformer_to_diffusers({wan_key: None})
    return converted


def convert_wan_key(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The `loading.Converter` of Wan DiT files: one tensor, renamed."""
    return [(model_key(key), tensor)]


def dit_stream(*, device: torch.device | str, dtype: torch.dtype, **stream: Any) -> dict[str, Any]:
    """The `loading.stream_tensors` keywords of Wan DiT files: keys renamed by `convert_wan_key`, weights cast to
    `dtype` except `FP32_PARAMETERS` (float32); `stream` adds the rest (the LoRA `transform`, `only_keys`, ...)."""
    return {"device": device, "dtype": dtype, "keep_fp32": keeps_fp32, "convert": convert_wan_key, **stream}


def load_transformer(
    model: InfiniteTalkTransformer,
    sources: Sequence[WeightsSource],
    *,
    device: torch.device | str,
    dtype: torch.dtype | None = None,
    **stream: Any,
) -> LoadReport:
    """Stream Wan-format `sources` into `model` (built under `parameters_on_meta`), later sources overriding earlier
    ones, in `dtype` (default: the model's; see `dit_stream`). The report is returned unchecked: call
    `raise_if_incomplete` (with `only_keys`, only those keys are accounted for)."""
    dtype = model.dtype if dtype is None else dtype
    return stream_into(model, sources, name="DiT", **dit_stream(device=device, dtype=dtype, **stream))
