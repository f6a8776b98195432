"""Colour drift correction computed with torch on the video's own device (the GPU in production).

Same algorithm and constants as `sampler/color.py` (skimage's sRGB <-> CIE Lab, D65, float64; per frame and Lab
channel `(v - mean) * std_ref / std + mean_ref`; negative Z clipped, RGB clipped to [0, 1]; blend by strength), but
without a round trip through NumPy on the CPU: at 81 x 640 x 640 the CPU version takes tens of seconds per clip,
this one milliseconds on a GPU. Frames are processed in chunks so float64 temporaries stay small.
Pinned against `sampler/color.py` and the sampler fixture's colour tensors in tests/test_pipeline.py.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import colorconv

CHUNK_FRAMES = 16
FLAT_STD = 1e-6  # Lab units (L spans 0..100): below this a frame's channel is flat, whatever the rounding noise


def _constants(device: torch.device):
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)  # noqa: E731
    return (
        as_tensor(colorconv.xyz_from_rgb),
        as_tensor(colorconv.rgb_from_xyz),
        as_tensor(colorconv.xyz_tristimulus_values(illuminant="D65", observer="2")),
    )


def rgb_to_lab(rgb: torch.Tensor, consts) -> torch.Tensor:
    """(..., 3) sRGB in [0, 1], float64 -> (..., 3) Lab."""
    xyz_from_rgb, _, white = consts
    linear = torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = (linear @ xyz_from_rgb.T) / white
    f = torch.where(xyz > 0.008856, xyz.clamp(min=0.008856) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    x, y, z = f.unbind(-1)
    return torch.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], dim=-1)


def lab_to_rgb(lab: torch.Tensor, consts) -> torch.Tensor:
    """(..., 3) Lab, float64 -> (..., 3) sRGB clipped to [0, 1] (negative Z clipped to 0 first, as skimage)."""
    _, rgb_from_xyz, white = consts
    L, a, b = lab.unbind(-1)
    y = (L + 16.0) / 116.0
    f = torch.stack([a / 500.0 + y, y, (y - b / 200.0).clamp(min=0.0)], dim=-1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * white
    linear = xyz @ rgb_from_xyz.T
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, linear * 12.92)
    return rgb.clamp(0.0, 1.0)


@torch.no_grad()
def match_colors_on_device(video: torch.Tensor, reference: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """video (3, T, H, W) and reference (3, H', W') in [-1, 1] -> corrected video, same shape/dtype/device."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour correction strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return video
    consts = _constants(video.device)
    ref = ((reference.double().permute(1, 2, 0) + 1) / 2).clamp(0, 1)  # (H', W', 3)
    ref_lab = rgb_to_lab(ref, consts).reshape(-1, 3)
    mean_ref, std_ref = ref_lab.mean(0), ref_lab.std(0, unbiased=False)  # (3,)
    out = torch.empty_like(video)
    for start in range(0, video.shape[1], CHUNK_FRAMES):
        src = ((video[:, start : start + CHUNK_FRAMES].double().permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)  # (t,H,W,3)
        lab = rgb_to_lab(src, consts)
        mean = lab.mean(dim=(1, 2), keepdim=True)
        std = lab.std(dim=(1, 2), keepdim=True, unbiased=False)
        flat = std < FLAT_STD  # a flat channel becomes mean_ref (robust to float rounding noise)
        scale = torch.where(flat, torch.zeros_like(std), std_ref / torch.where(flat, 1.0, std))
        matched = lab_to_rgb((lab - mean) * scale + mean_ref, consts)
        blended = (1 - strength) * src + strength * matched
        out[:, start : start + CHUNK_FRAMES] = (blended * 2 - 1).permute(3, 0, 1, 2).to(video.dtype)
    return out
