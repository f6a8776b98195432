"""Colour drift correction: match each decoded clip's Lab statistics to the reference image, blended by a strength.

Per frame and per CIE Lab channel (skimage, D65): `(v - mean_src) * std_ref / std_src + mean_ref` (population std;
a flat channel becomes mean_ref), back to RGB, clipped to [0, 1], then `(1-s)*src + s*corrected` in RGB [0, 1].
Applied to every decoded clip BEFORE its last frames become the next clip's motion context.
Reference: ../shared/parity/README.md §2 "Colour matching".
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from skimage import color


def match_colors(video: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """video (3, T, H, W) and reference (3, H', W') in [-1, 1] -> video of the same shape, dtype and device."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour correction strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return video
    assert video.dim() == 4 and video.shape[0] == 3, f"expected video (3, T, H, W), got {tuple(video.shape)}"
    assert reference.dim() == 3 and reference.shape[0] == 3, (
        f"expected reference (3, H, W), got {tuple(reference.shape)}"
    )
    src = np.clip((video.permute(1, 2, 3, 0).cpu().numpy() + 1.0) / 2.0, 0.0, 1.0)  # (T, H, W, 3) in [0, 1]
    ref = np.clip((reference.permute(1, 2, 0).cpu().numpy() + 1.0) / 2.0, 0.0, 1.0)  # (H, W, 3)

    src_lab, ref_lab = color.rgb2lab(src), color.rgb2lab(ref)
    mean_src, std_src = src_lab.mean(axis=(1, 2), keepdims=True), src_lab.std(axis=(1, 2), keepdims=True)
    mean_ref, std_ref = ref_lab.mean(axis=(0, 1)), ref_lab.std(axis=(0, 1))
    flat = std_src == 0
    scale = np.where(flat, 0.0, std_ref / np.where(flat, 1.0, std_src))
    matched_lab = (src_lab - mean_src) * scale + mean_ref  # a flat channel becomes mean_ref

    with warnings.catch_warnings():  # out-of-gamut Lab values are expected here; they are clipped just below
        warnings.filterwarnings("ignore", message=".*negative Z values.*")
        matched = np.clip(color.lab2rgb(matched_lab), 0.0, 1.0)
    blended = (1 - strength) * src + strength * matched
    out = torch.from_numpy(np.ascontiguousarray(blended * 2.0 - 1.0)).permute(3, 0, 1, 2)
    return out.to(device=video.device, dtype=video.dtype)
