"""Parity: how the reference image and the speaker masks reach the model (`sampler/meta.json: buckets`,
`sampler/` resize examples, `dit/two_speakers/` masks; README §2 "Resolution buckets" and §1 two speakers).

Every check runs the production functions: the bucket tables and rule (`media/image.py`), the PIL resize-and-crop,
the nearest-neighbour mask path and the speaker masks (`infinitetalk/engine.py`). Errors are counts of mismatches
(tables, choices) or max abs errors in pixel values (0..255) and mask values (0/1).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.engine import resize_and_crop_masks, source_speaker_masks, speaker_masks
from infinitetalk_engine.media.image import BUCKETS, nearest_bucket, plan_resize_crop, resize_and_crop

from . import Check
from ._compare import max_abs_error

TIERS = {"infinitetalk-480": ("480p", "table_480"), "infinitetalk-720": ("720p", "table_720")}


@functools.lru_cache(maxsize=2)
def _sampler(root: Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = root / "sampler"
    return load_file(folder / "tensors.safetensors"), json.loads((folder / "meta.json").read_text())["buckets"]


def _table(buckets: dict, name: str) -> dict[str, tuple[int, int]]:
    return {key: tuple(size) for key, (size, _) in buckets[name].items()}


def _tables_error(root: Path) -> float:
    """Our built-in tables against upstream's, key by key and in order: the number of differing entries."""
    _, buckets = _sampler(root)
    wrong = 0
    for resolution, name in TIERS.values():
        ours, theirs = list(BUCKETS[resolution].items()), list(_table(buckets, name).items())
        wrong += sum(a != b for a, b in zip(ours, theirs, strict=False)) + abs(len(ours) - len(theirs))
    return float(wrong)


def _choices_error(root: Path) -> float:
    """Every listed input size: the chosen key, target, resized size and crop offsets. Mismatching cases."""
    _, buckets = _sampler(root)
    cases = buckets["cases"]
    if not cases:
        raise ValueError("meta.json lists no bucket cases")
    wrong = 0
    for case in cases:
        resolution, _ = TIERS[case["tier"]]
        bucket = nearest_bucket(BUCKETS[resolution], case["input_w"], case["input_h"])
        plan = plan_resize_crop(case["input_w"], case["input_h"], bucket.height, bucket.width)
        ours = (bucket.key, bucket.height, bucket.width, plan.resized_h, plan.resized_w, plan.top, plan.left)
        theirs = tuple(
            case[k] for k in ("bucket_key", "target_h", "target_w", "resized_h", "resized_w", "crop_top", "crop_left")
        )
        wrong += ours != theirs
    return float(wrong)


def _resize_error(root: Path) -> float:
    """The pixel example: PIL bilinear resize to cover, centre crop (values 0..255)."""
    tensors, _ = _sampler(root)
    source = tensors["resize_crop_example_in_hwc_uint8"].to(torch.uint8).numpy()
    expected = tensors["resize_crop_example_out_1c1hw"][0, :, 0]  # (3, H, W)
    out = resize_and_crop(Image.fromarray(source), expected.shape[1], expected.shape[2])
    return max_abs_error(torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).float(), expected)


def _mask_resize_error(root: Path) -> float:
    """The mask example: nearest-neighbour resize to cover, centre crop."""
    tensors, _ = _sampler(root)
    expected = tensors["resize_crop_mask_example_out"]  # (3, H, W)
    ours = resize_and_crop_masks(tensors["resize_crop_mask_example_in"], expected.shape[1], expected.shape[2])
    return max_abs_error(ours, expected)


def _speaker_masks_error(root: Path) -> float:
    """Two speakers without boxes: the pixel masks (left/right halves minus the face margin) and their latent
    grid, at the fixture's source size and target size."""
    folder = root / "dit" / "two_speakers"
    inputs = load_file(folder / "inputs.safetensors")
    source, expected = inputs["src_human_masks"], inputs["ref_target_masks"]  # (3, h, w), (3, H/8, W/8)
    src_h, src_w = source.shape[1:]
    height, width = expected.shape[1] * 8, expected.shape[2] * 8
    ours = speaker_masks(src_w, src_h, height, width, None, 2)
    pixel_level = source_speaker_masks(src_w, src_h, None)
    return max(max_abs_error(ours, expected), max_abs_error(pixel_level, source))


CHECKS = [
    Check("image bucket tables", 0.0, _tables_error),
    Check("image bucket choice, resize and crop (every case)", 0.0, _choices_error),
    Check("image resize-and-crop pixels", 0.0, _resize_error),
    Check("image mask resize-and-crop (nearest)", 0.0, _mask_resize_error),
    Check("image two-speaker masks", 0.0, _speaker_masks_error),
]
