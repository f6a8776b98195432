"""`InfiniteTalkBlock`: diffusers' `WanTransformerBlock` plus InfiniteTalk's audio cross-attention, run in the
upstream order.

Reused from diffusers as they are: `norm1` (non-affine LN), `attn1`'s projections and RMS norms (self-attention),
`norm2` + `attn2` (affine LN + text/image cross-attention, the whole module), `norm3` (non-affine LN) + `ffn`,
and `scale_shift_table` (Wan's `modulation`). Ours: the self-attention forward (it needs the RoPE'd q/k for the
two-speaker reference map), `norm_x` + `audio_cross_attn`, and the block forward:

    shift1, scale1, gate1, shift2, scale2, gate2 = scale_shift_table + e0               (float32)
    1. x += gate1 * SelfAttn(norm1(x) * (1 + scale1) + shift1)                             3-D RoPE, SDPA
    2. x += CrossAttn(norm2(x), [257 image | 512 text] context)                           no gate
    3. x += AudioAttn(norm_x(x), audio tokens of the same latent frame)                  no gate, no modulation
    4. x += gate2 * FFN(norm3(x) * (1 + scale2) + shift2)                                 GELU(tanh)

The residual stream `x` stays float32 (upstream adds in float32 and rounds to the weight dtype after each add; we
keep the float32 sum), sublayers run in the weight dtype (bf16 in production).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import AttentionBackendName
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanTransformerBlock

from .audio_attention import AudioCrossAttention
from .fp8_linear import compute_dtype_of
from .rotary import apply_rotary
from .speaker_routing import reference_attention_map, speaker_positions
from .transformer_config import TransformerConfig


class InfiniteTalkBlock(WanTransformerBlock):
    def __init__(self, config: TransformerConfig):
        super().__init__(
            config.dim,
            config.ffn_dim,
            config.num_heads,
            qk_norm="rms_norm_across_heads",
            cross_attn_norm=True,
            eps=config.eps,
            added_kv_proj_dim=config.dim,
        )
        # Every attention here is torch SDPA; pin diffusers' cross-attention to it whatever DIFFUSERS_ATTN_BACKEND says.
        self.attn2.processor._attention_backend = AttentionBackendName.NATIVE
        # 3. Audio cross-attention (Wan checkpoint names: blocks.N.norm_x, blocks.N.audio_cross_attn).
        self.norm_x = FP32LayerNorm(config.dim, config.eps, elementwise_affine=True)
        self.audio_cross_attn = AudioCrossAttention(config.dim, config.audio_dim, config.num_heads)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        timestep_proj: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        audio_tokens: torch.Tensor,
        ref_masks: torch.Tensor | None = None,
        capture: dict | None = None,
        prefix: str = "",
    ) -> torch.Tensor:
        """x: (1, L, dim) float32; context: (1, 769, dim); timestep_proj: (1, 6, dim) float32; rotary: cos/sin
        (1, L, 1, d/2); audio_tokens: (speakers, T_lat, N, audio_dim); ref_masks: (3, tokens per frame), needed for
        two speakers. `capture` (tests only) receives this block's intermediates under `prefix`."""
        dtype = compute_dtype_of(self.attn1.to_q)
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.scale_shift_table.float() + timestep_proj.float()).chunk(
            6, dim=1
        )
        speakers = audio_tokens.shape[0]
        want_map = speakers > 1 or (capture is not None and ref_masks is not None)

        # 1. Self-attention
        hidden = (self.norm1(x) * (1 + scale1) + shift1).to(dtype)
        attn_out, ref_map = self._self_attention(hidden, rotary, ref_masks if want_map else None)
        x = x + attn_out.float() * gate1

        # 2. Text + image cross-attention
        cross_out = self.attn2(self.norm2(x).to(dtype), context)
        x = x + cross_out.float()

        # 3. Audio cross-attention
        positions = speaker_positions(ref_map) if speakers > 1 else None
        audio_out = self.audio_cross_attn(self.norm_x(x).to(dtype), audio_tokens.to(dtype), positions)
        x = x + audio_out.float()

        # 4. Feed-forward
        hidden = (self.norm3(x) * (1 + scale2) + shift2).to(dtype)
        x = x + self.ffn(hidden).float() * gate2

        if capture is not None:
            capture.update(
                {
                    f"{prefix}self_attn_out": attn_out,
                    f"{prefix}cross_attn_out": cross_out,
                    f"{prefix}audio_cross_attn_out": audio_out,
                    f"{prefix}out": x,
                }
            )
            if ref_map is not None:
                capture[f"{prefix}x_ref_attn_map"] = ref_map
        return x

    def _self_attention(
        self, hidden: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], ref_masks: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Wan self-attention on `attn1`'s weights: q/k RMS-normed over the full width, 3-D RoPE, SDPA, `to_out`.
        Also returns the reference attention map from the RoPE'd q/k when `ref_masks` is given."""
        attn = self.attn1
        if attn.fused_projections:
            q, k, v = attn.to_qkv(hidden).chunk(3, dim=-1)
        else:
            q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
        q, k = attn.norm_q(q), attn.norm_k(k)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))  # (1, L, heads, d)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        out = attn.to_out[0](out.transpose(1, 2).flatten(2))  # (1, L, dim)
        ref_map = reference_attention_map(q, k, ref_masks) if ref_masks is not None else None
        return out, ref_map
