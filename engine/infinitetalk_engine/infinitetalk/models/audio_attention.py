"""`AudioCrossAttention`: visual tokens attend to the audio tokens of their own latent frame (InfiniteTalk).

Frame-local: the L visual tokens are regrouped as (T_lat, tokens per frame) and each frame is one SDPA batch
entry whose keys are that frame's audio tokens (32 per speaker, speaker 0 first). `q_linear` projects the visual
tokens, `kv_linear` the audio tokens (first `dim` channels K, next `dim` V), `proj` the result. No q/k norm, no mask.
One speaker: plain attention. Two speakers: queries and keys get a 1-D RoPE (see `speaker_routing`) so that each
visual token prefers the speaker its position is nearest to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rotary import angles_1d, apply_rotary
from .speaker_routing import AUDIO_KEY_POSITIONS


class AudioCrossAttention(nn.Module):
    def __init__(self, dim: int, audio_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(audio_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, audio_tokens: torch.Tensor, speaker_positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (1, L, dim) normalised visual tokens; audio_tokens: (speakers, T_lat, N, audio_dim);
        speaker_positions: (L,) RoPE positions, required for two speakers. Returns (1, L, dim)."""
        speakers, frames, per_speaker, _ = audio_tokens.shape
        _, length, dim = x.shape
        if length % frames:
            raise ValueError(f"{length} visual tokens do not split into {frames} latent frames")
        per_frame = length // frames
        heads, head_dim = self.num_heads, self.head_dim

        # 1. Projections, one SDPA batch entry per latent frame.
        q = self.q_linear(x).view(frames, per_frame, heads, head_dim)  # (T, S, h, d)
        tokens = audio_tokens.transpose(0, 1).reshape(frames, speakers * per_speaker, -1)  # (T, spk*N, C)
        k, v = self.kv_linear(tokens).view(frames, -1, 2, heads, head_dim).unbind(2)  # (T, spk*N, h, d)

        # 2. Two speakers: route by 1-D RoPE positions.
        if speakers > 1:
            if speakers != len(AUDIO_KEY_POSITIONS) or speaker_positions is None:
                raise ValueError("audio routing supports 1 speaker, or 2 with speaker positions")
            q_angles = angles_1d(speaker_positions.view(frames, per_frame, 1), head_dim)  # (T, S, 1, d/2)
            q = apply_rotary(q, q_angles.cos(), q_angles.sin())
            key_positions = torch.tensor(AUDIO_KEY_POSITIONS, device=x.device).repeat_interleave(per_speaker)
            k_angles = angles_1d(key_positions.view(1, -1, 1), head_dim)  # (1, spk*N, 1, d/2)
            k = apply_rotary(k, k_angles.cos(), k_angles.sin())

        # 3. Attention per frame, back to (1, L, dim).
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (T, h, S, d)
        return self.proj(out.transpose(1, 2).reshape(1, length, dim))
