"""CLIP ViT-H/14 image encoder: transformers' `CLIPVisionModel` loaded from the visual tower of Wan's CLIP checkpoint.

The pipeline uses the penultimate features: all blocks but the last, no post-norm, all 257 tokens. So the model is
built with `num_layers - 1` blocks and the last block's weights are skipped at load time (nothing computes or stores
them). The text tower (`textual.*`), `log_scale` and the projection `visual.head` are not used by Wan.
Reference: ../shared/reference/infinitetalk-engine.md §1, ../shared/parity/README.md §5.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from ..loading import Converter, WeightsSource, load_weights, parameters_on_meta

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipVisionArgs:
    """Shape of the visual tower in Wan's names. The default is the ViT-H/14 of open-clip-xlm-roberta-large."""

    image_size: int = 224
    patch_size: int = 14
    dim: int = 1280
    mlp_ratio: int = 4
    num_heads: int = 16
    num_layers: int = 32
    activation: str = "gelu"
    eps: float = 1e-5

    @classmethod
    def vit_h_14(cls) -> ClipVisionArgs:
        return cls()

    @classmethod
    def from_wan_kwargs(cls, kwargs: dict) -> ClipVisionArgs:
        """From the keyword arguments of Wan's `VisionTransformer`."""
        if kwargs.get("post_norm", False) or not kwargs.get("pre_norm", True):
            raise ValueError("only the pre-norm CLIP visual tower is supported")
        if kwargs.get("activation", "gelu") not in ("gelu", "quick_gelu"):
            raise ValueError(f"unknown CLIP activation {kwargs['activation']!r}")
        names = ("image_size", "patch_size", "dim", "mlp_ratio", "num_heads", "num_layers")
        return cls(
            **{name: kwargs[name] for name in names},
            activation=kwargs.get("activation", "gelu"),
            eps=kwargs.get("norm_eps", 1e-5),
        )

    @classmethod
    def from_fixture_config(cls, path: str | Path) -> ClipVisionArgs:
        """From a parity fixture's `clip/config.json`."""
        return cls.from_wan_kwargs(json.loads(Path(path).read_text())["vision_kwargs"])

    def to_hf(self) -> CLIPVisionConfig:
        """The penultimate-feature model: one block fewer than the checkpoint has."""
        return CLIPVisionConfig(
            hidden_size=self.dim,
            intermediate_size=self.dim * self.mlp_ratio,
            num_hidden_layers=self.num_layers - 1,
            num_attention_heads=self.num_heads,
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_act=self.activation,
            layer_norm_eps=self.eps,
            attention_dropout=0.0,
        )


_BLOCK_KEY = re.compile(r"transformer\.(\d+)\.(.+)")
_BLOCK_KEYS = {
    "norm1.weight": "layer_norm1.weight",
    "norm1.bias": "layer_norm1.bias",
    "norm2.weight": "layer_norm2.weight",
    "norm2.bias": "layer_norm2.bias",
    "attn.proj.weight": "self_attn.out_proj.weight",
    "attn.proj.bias": "self_attn.out_proj.bias",
    "mlp.0.weight": "mlp.fc1.weight",
    "mlp.0.bias": "mlp.fc1.bias",
    "mlp.2.weight": "mlp.fc2.weight",
    "mlp.2.bias": "mlp.fc2.bias",
}


def wan_clip_visual_converter(num_blocks: int) -> Converter:
    """Wan's `visual.*` keys -> `CLIPVisionModel` (vision tower) keys, keeping blocks `0..num_blocks-1`. The text
    tower, `visual.head` and later blocks are dropped; any other key passes through (-> unexpected)."""

    def convert(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        if not key.startswith("visual."):
            return []  # the text tower (`textual.*`) and `log_scale`: Wan uses the visual tower only
        key = key.removeprefix("visual.")
        match = _BLOCK_KEY.fullmatch(key)
        if key == "head":
            return []  # projection to the joint space: Wan uses the token features, not the embedding
        if key == "patch_embedding.weight":
            return [("embeddings.patch_embedding.weight", value)]
        if key == "cls_embedding":
            return [("embeddings.class_embedding", value.reshape(-1))]  # (1, 1, dim) -> (dim,)
        if key == "pos_embedding":
            return [("embeddings.position_embedding.weight", value.reshape(value.shape[-2], value.shape[-1]))]
        if key.startswith("pre_norm."):
            return [("pre_layrnorm." + key.split(".", 1)[1], value)]
        if key.startswith("post_norm."):
            return [("post_layernorm." + key.split(".", 1)[1], value)]
        if not match:
            return [(key, value)]
        block, name = int(match.group(1)), match.group(2)
        if block >= num_blocks:
            return []  # the last block: not part of the penultimate features
        prefix = f"encoder.layers.{block}."
        if name in ("attn.to_qkv.weight", "attn.to_qkv.bias"):
            q, k, v = value.chunk(3, dim=0)  # to_qkv output is [q | k | v]
            suffix = name.rsplit(".", 1)[1]
            return [
                (f"{prefix}self_attn.{part}.{suffix}", t) for part, t in (("q_proj", q), ("k_proj", k), ("v_proj", v))
            ]
        return [(prefix + _BLOCK_KEYS.get(name, name), value)]

    return convert


def load_clip_visual(
    source: WeightsSource,
    args: ClipVisionArgs = ClipVisionArgs(),
    dtype: torch.dtype = torch.float16,
    device: torch.device | str = "cpu",
) -> CLIPVisionModel:
    """The visual tower (minus its last block) from Wan's CLIP checkpoint
    (`models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`). Upstream runs it under fp16 autocast."""
    config = args.to_hf()
    with parameters_on_meta():
        model = CLIPVisionModel(config)
    convert = wan_clip_visual_converter(config.num_hidden_layers)
    load_weights(_tower(model), source, name="CLIP", convert=convert, dtype=dtype, device=device)
    return model


def _tower(model: CLIPVisionModel):
    """The module holding `embeddings`/`encoder` (transformers 4.x nests it as `vision_model`, 5.x does not)."""
    return getattr(model, "vision_model", model)


def preprocess(frames: torch.Tensor, image_size: int = 224) -> torch.Tensor:
    """(B, 3, H, W) frames in [-1, 1] -> (B, 3, S, S) CLIP input: bicubic resize (no antialias), to [0, 1],
    normalise with CLIP's mean/std. Computed in float32."""
    x = F.interpolate(frames.float(), size=(image_size, image_size), mode="bicubic", align_corners=False)
    x = x * 0.5 + 0.5
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def encode_image(model: CLIPVisionModel, frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) frames in [-1, 1] -> (B, 257, dim) penultimate-block tokens (no post-norm), in model dtype."""
    weight = _tower(model).embeddings.patch_embedding.weight
    pixels = preprocess(frames.to(weight.device), model.config.image_size).to(weight.dtype)
    return model(pixel_values=pixels).last_hidden_state
