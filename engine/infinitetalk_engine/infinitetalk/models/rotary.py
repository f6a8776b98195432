"""Rotary position embedding on interleaved channel pairs, the layout Wan and InfiniteTalk use.

A head of width d is read as d/2 complex numbers made of adjacent channels (2j, 2j+1); pair j is rotated by
`angle[..., j]`. The 3-D RoPE of self-attention gets its angles from diffusers' `WanRotaryPosEmbed`; the 1-D RoPE
that routes audio to speakers uses `angles_1d`. Rotation runs in float32 whatever the input dtype (upstream rotates
in float64/float32 and only then hands q/k to a bf16 attention kernel).
"""

from __future__ import annotations

import torch

ROPE_BASE = 10000.0


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x` (..., d) by angles whose cos/sin are (..., d/2), broadcast against x's leading dims."""
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., d/2, 2)
    real, imag = pairs.unbind(-1)
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def angles_1d(positions: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Angles (..., head_dim/2) for float positions (...): position * base^(-2j/head_dim), in float32."""
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    inv_freq = 1.0 / (ROPE_BASE**exponents)
    return positions.float()[..., None] * inv_freq
