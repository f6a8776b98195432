"""Parity: the CLIP ViT visual tower loaded from Wan's CLIP key names (`clip/`, README §5)."""

from __future__ import annotations

from pathlib import Path

import torch

from infinitetalk_engine.infinitetalk.models.image_encoder import (
    ClipVisionArgs,
    encode_image,
    load_clip_visual,
    preprocess,
)

from ._compare import tensor_checks

TOLERANCE = 1e-4  # README table: CLIP in fp32


def _ours(folder: Path, fixture: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    args = ClipVisionArgs.from_fixture_config(folder / "config.json")
    model = load_clip_visual(folder / "weights.safetensors", args, dtype=torch.float32)
    frame = fixture["image"][:, :, -1]  # (1, 3, 1, H, W) -> the conditioning frame (1, 3, H, W)
    return {"pixel_values_224": preprocess(frame, args.image_size), "features_penultimate": encode_image(model, frame)}


CHECKS = tensor_checks("clip", _ours, dict.fromkeys(("pixel_values_224", "features_penultimate"), TOLERANCE))
