"""Parity: the CLIP ViT visual tower loaded from Wan's CLIP key names (`clip/`, README §5)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.models.image_encoder import (
    ClipVisionArgs,
    encode_image,
    load_clip_visual,
    preprocess,
)

from ._compare import tensor_checks

TOLERANCE = 1e-4  # README table: CLIP in fp32


@functools.lru_cache(maxsize=2)
def _run(root: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    folder = root / "clip"
    args = ClipVisionArgs.from_fixture_config(folder / "config.json")
    model = load_clip_visual(folder / "weights.safetensors", args, dtype=torch.float32)
    fixture = load_file(folder / "tensors.safetensors")
    frame = fixture["image"][:, :, -1]  # (1, 3, 1, H, W) -> the conditioning frame (1, 3, H, W)
    ours = {"pixel_values_224": preprocess(frame, args.image_size), "features_penultimate": encode_image(model, frame)}
    return ours, fixture


CHECKS = tensor_checks("clip", _run, dict.fromkeys(("pixel_values_224", "features_penultimate"), TOLERANCE))
