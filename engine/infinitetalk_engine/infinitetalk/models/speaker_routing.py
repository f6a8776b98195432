"""Which speaker each visual token listens to, for two-speaker InfiniteTalk.

1. `reference_attention_map`: in every block, the self-attention's RoPE'd queries attend to the keys of the first
   latent frame (the reference image); the attention mass that falls inside each person's mask (person 1, person 2,
   background; mask-weighted mean over the keys) is averaged over heads -> (3, tokens).
2. `speaker_positions`: each token gets a 1-D RoPE position: person 1 tokens min-max scaled into [0, 4], person 2
   tokens into [20, 24], background 12, by the row with the largest mass. Audio tokens sit at 2 (speaker 1) and
   22 (speaker 2), so a token attends most to the speaker whose position is nearest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Upstream's class_range 24 / class_interval 4.
SPEAKER_RANGES = ((0.0, 4.0), (20.0, 24.0))
BACKGROUND_POSITION = 12.0
AUDIO_KEY_POSITIONS = tuple((low + high) / 2 for low, high in SPEAKER_RANGES)  # (2, 22)
MIN_MAX_EPS = 1e-8


def token_masks(ref_target_masks: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """(classes, H_lat, W_lat) masks -> (classes, tokens per frame) 0/1 float, by nearest interpolation."""
    if ref_target_masks.ndim != 3:
        raise ValueError(f"ref_target_masks must be (classes, H, W); got {tuple(ref_target_masks.shape)}")
    resized = F.interpolate(ref_target_masks[None].float(), size=grid_hw, mode="nearest")[0]
    return (resized > 0).flatten(1).float()


def reference_attention_map(q: torch.Tensor, k: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Attention mass of every query on each mask's reference-frame keys, averaged over heads.

    q: (1, L, heads, d) RoPE'd queries; k: (1, L, heads, d) RoPE'd keys (the first `masks.shape[1]` tokens are the
    reference frame); masks: (classes, tokens per frame). Returns (classes, L) float32.

    softmax(q k^T) @ (mask / |mask|) is an attention whose values are the normalised masks, so SDPA computes it
    without materialising the (L x reference) map. The values are zero-padded to the head width so every SDPA
    backend (flash included) accepts them.
    """
    heads, head_dim = q.shape[2], q.shape[3]
    used_heads = 2 * (heads // 2)  # upstream averages two halves of heads//2 each (an odd last head is dropped)
    classes, ref_tokens = masks.shape
    weights = masks / masks.sum(dim=1, keepdim=True)  # (classes, ref)
    values = q.new_zeros(1, 1, ref_tokens, max(head_dim, classes))
    values[0, 0, :, :classes] = weights.t().to(q.dtype)
    query = q[:, :, :used_heads].transpose(1, 2)  # (1, h, L, d)
    key = k[:, :ref_tokens, :used_heads].transpose(1, 2)  # (1, h, ref, d)
    values = values.expand(1, used_heads, -1, -1).contiguous()  # plain strides keep flash/cuDNN eligible
    mass = F.scaled_dot_product_attention(query, key, values)
    return mass[0, :, :, :classes].float().mean(0).t()  # (classes, L)


def speaker_positions(ref_map: torch.Tensor) -> torch.Tensor:
    """(3, L) map (person 1, person 2, background) -> (L,) float32 RoPE position per visual token."""
    if ref_map.shape[0] != 3:
        raise ValueError(
            f"two-speaker routing needs 3 reference masks (person 1, person 2, background); got {ref_map.shape[0]}"
        )
    ref_map = ref_map.float()
    scaled = []
    for row, (low, high) in zip(ref_map[:2], SPEAKER_RANGES, strict=True):
        lo, hi = row.min(), row.max()
        scaled.append((row - lo) / (hi - lo + MIN_MAX_EPS) * (high - low) + low)
    scaled.append(torch.full_like(ref_map[0], BACKGROUND_POSITION))
    choice = ref_map.argmax(dim=0)  # first maximum on ties
    return torch.stack(scaled, dim=1).gather(1, choice[:, None])[:, 0]
