"""Loading Wan-format DiT weights (base shards, InfiniteTalk adapter, LoRA-merged tensors) into
`InfiniteTalkTransformer`, one tensor at a time, with strict key accounting.

Key names: audio-adapter keys (`audio_proj.*`, `blocks.N.audio_cross_attn.*`, `blocks.N.norm_x.*`) keep their Wan
names. Every other key goes through diffusers' `convert_wan_transformer_to_diffusers`, one key at a time (it pops
the keys of the dict it is given, and it would rename `audio_cross_attn` to `audio_attn2`, so audio keys never go
through it). A `model.diffusion_model.` prefix is stripped by the converter; other prefixes are unexpected keys.

Streaming load (host RAM stays near one tensor; GPU holds the bf16 model):

    with torch.device("meta"):
        model = InfiniteTalkTransformer(config)
    model.cast_for_inference(torch.bfloat16)               # meta params now carry their target dtypes
    loader = WanWeightLoader(model, device="cuda")
    for key, tensor in stream_of_wan_tensors:              # safetensors safe_open(...).get_tensor(key), per shard
        tensor = lora.merge_into(key, tensor.to("cuda"), scale)   # optional, see infinitetalk_engine/lora.py
        loader.load(key, tensor)                           # cast to the parameter's dtype, placed on the device
    report = loader.finish()                               # raises EngineError("load_failed") unless complete

A key loaded twice (the adapter overriding a base key) keeps the last tensor and is listed in `report.overridden`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from torch import nn

from ..engines.base import EngineError
from .transformer import InfiniteTalkTransformer

AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")
SHOWN_KEYS = 8


@functools.cache
def model_key(wan_key: str) -> str:
    """The model's parameter name for a Wan checkpoint key."""
    if AUDIO_KEY.match(wan_key):
        return wan_key
    (converted,) = convert_wan_transformer_to_diffusers({wan_key: None})
    return converted


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)  # model parameters no tensor was given for
    unexpected: list[str] = field(default_factory=list)  # Wan keys the model has no parameter for
    overridden: list[str] = field(default_factory=list)  # Wan keys loaded more than once (last one kept)
    loaded: int = 0

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unexpected

    def describe(self) -> str:
        return (
            f"{self.loaded} tensors loaded; missing {len(self.missing)} {_first(self.missing)}; "
            f"unexpected {len(self.unexpected)} {_first(self.unexpected)}; "
            f"overridden {len(self.overridden)} {_first(self.overridden)}"
        )


class WanWeightLoader:
    """Loads Wan-named tensors into a model built normally or on the meta device."""

    def __init__(self, model: InfiniteTalkTransformer, device: torch.device | str | None = None):
        self.model = model
        self.device = torch.device(device) if device is not None else None
        self.parameters = dict(model.named_parameters())
        self.seen: set[str] = set()
        self.report = LoadReport()

    def load(self, wan_key: str, tensor: torch.Tensor) -> bool:
        """Load one tensor; returns False (and records it) when the model has no such parameter."""
        name = model_key(wan_key)
        param = self.parameters.get(name)
        if param is None:
            self.report.unexpected.append(wan_key)
            return False
        if tuple(tensor.shape) != tuple(param.shape):
            raise EngineError(
                "load_failed",
                f"{wan_key}: shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(param.shape)} (wrong config for this checkpoint?)",
            )
        with torch.no_grad():
            if param.is_meta:
                device = self.device or tensor.device
                module_name, _, attr = name.rpartition(".")
                module = self.model.get_submodule(module_name)
                module._parameters[attr] = self.parameters[name] = nn.Parameter(
                    tensor.to(device=device, dtype=param.dtype), requires_grad=False
                )
            else:
                param.copy_(tensor)
        if name in self.seen:
            self.report.overridden.append(wan_key)
        self.seen.add(name)
        self.report.loaded += 1
        return True

    def finish(self, strict: bool = True) -> LoadReport:
        """Account for parameters never loaded, rebuild the RoPE tables beside the weights, and (strict) raise
        `EngineError("load_failed")` unless every parameter was loaded and every key was used."""
        self.report.missing = sorted(set(self.parameters) - self.seen)
        if strict and not self.report.complete:
            raise EngineError("load_failed", f"DiT weights do not match the model: {self.report.describe()}")
        device = self.model.patch_embedding.weight.device
        if device.type != "meta" and self.model.rope.freqs_cos.device != device:
            self.model.init_rope(device)
        self.model.eval().requires_grad_(False)
        return self.report


def load_state_dict_wan(
    model: InfiniteTalkTransformer,
    state_dict: Mapping[str, torch.Tensor],
    strict: bool = True,
    device: torch.device | str | None = None,
) -> LoadReport:
    """Load a whole Wan-format state dict (base + adapter keys); see `WanWeightLoader` for the streaming form."""
    loader = WanWeightLoader(model, device)
    for key, tensor in state_dict.items():
        loader.load(key, tensor)
    return loader.finish(strict)


def _first(keys: list[str]) -> str:
    if not keys:
        return ""
    more = f", ... (+{len(keys) - SHOWN_KEYS})" if len(keys) > SHOWN_KEYS else ""
    return "(" + ", ".join(keys[:SHOWN_KEYS]) + more + ")"
