"""The InfiniteTalk DiT: Wan2.1-I2V-14B (diffusers' Wan building blocks) + the InfiniteTalk audio adapter.

Public API (single sample, as upstream; classifier-free guidance passes are separate calls):

    config = TransformerConfig.from_wan_config(json.load(open("Wan2.1-I2V-14B-480P/config.json")))
    model = InfiniteTalkTransformer(config)                    # or under parameters_on_meta, see transformer_weights
    model.cast_for_inference(torch.bfloat16)                   # bf16 weights, float32 where upstream keeps float32
    report = load_transformer(model, [wan_file], device="cuda")  # transformer_weights.py; strict key accounting

    audio_tokens = model.project_audio(audio_windows)          # (speakers, 81, 5, 12, 768) -> (speakers, 21, 32, 768)
                                                               # once per clip; null audio: windows zeros_like[-1:]
    velocity = model(
        x,                  # (16, T_lat, H_lat, W_lat) noisy latent
        timestep,           # float or 0-d/1-element tensor, e.g. 933.4267 (raw shifted value, not an index)
        text_context,       # (L<=512, 4096) or (1, L, 4096) T5 output, trimmed to its real tokens
        clip_features,      # (1, 257, 1280) or (257, 1280) CLIP penultimate tokens of the reference image
        y,                  # (20, T_lat, H_lat, W_lat) conditioning: 4 mask channels | 16 reference latent channels
        audio_tokens,       # (speakers, T_lat, 32, 768) from project_audio; 1 or 2 speakers
        ref_target_masks,   # (3, H_lat, W_lat) person 1 / person 2 / background; required for 2 speakers
    )                       # -> (16, T_lat, H_lat, W_lat) float32 flow velocity (noise - x0)

Dtype policy: call `cast_for_inference(dtype)`, never `model.to(dtype)` (that would also cast the RoPE tables and
the float32 modulation); `model.to(device)` is fine. Sublayers run in the weight dtype, the residual stream,
modulation, time embedding and head in float32. The two-speaker reference map is computed (per block, from its
RoPE'd self-attention q/k) only when two speakers are given, or when capturing.

`capture=dict()` (tests only) fills in the intermediates named like the parity fixture (`patch_embedding_out`,
`time_embedding_out`, `time_projection_out`, `text_embedding_out`, `img_emb_out`, `block{i}_self_attn_out`,
`block{i}_x_ref_attn_map`, `block{i}_cross_attn_out`, `block{i}_audio_cross_attn_out`, `block{i}_out`).

Parameter names are exactly those of diffusers' `WanTransformer3DModel` (so `convert_wan_transformer_to_diffusers`
output loads as is) plus Wan's own names for the audio adapter: `audio_proj.*`, `blocks.N.norm_x.*`,
`blocks.N.audio_cross_attn.{q_linear,kv_linear,proj}.*`.

Reference: MeiGen-AI/InfiniteTalk `wan/modules/multitalk_model.py` (behaviour pinned by ../shared/parity/dit).
"""

from __future__ import annotations

import math

import torch
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTimeTextImageEmbedding
from torch import nn

from .audio_projection import AudioProjection
from .fp8_linear import Fp8Linear, replace_linears
from .speaker_routing import token_masks
from .transformer_block import InfiniteTalkBlock
from .transformer_config import TransformerConfig

# Parameter-name parts kept in float32 by `cast_for_inference` (upstream computes these under float32 autocast).
FP32_PARAMETERS = (
    "condition_embedder.time_embedder.",  # timestep MLP -> e
    "condition_embedder.time_proj.",  # e -> e0 (6 modulation vectors)
    "scale_shift_table",  # per-block and head modulation
    "proj_out.",  # head linear
)


def keeps_fp32(name: str) -> bool:
    return any(part in name for part in FP32_PARAMETERS)


def is_adapter(name: str) -> bool:
    """Whether a block-relative module or parameter name belongs to the audio adapter (`audio_cross_attn`, `norm_x`)."""
    return "audio_cross_attn" in name or "norm_x" in name


class InfiniteTalkTransformer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        config.validate()
        self.config = config
        # 1. Patch & 3-D rotary position embedding
        self.rope = WanRotaryPosEmbed(config.head_dim, config.patch_size, config.rope_max_positions)
        self.patch_embedding = nn.Conv3d(config.in_dim, config.dim, config.patch_size, config.patch_size)
        # 2. Condition embeddings: time (-> e, e0), text, CLIP image
        self.condition_embedder = WanTimeTextImageEmbedding(
            dim=config.dim,
            time_freq_dim=config.freq_dim,
            time_proj_dim=6 * config.dim,
            text_embed_dim=config.text_dim,
            image_embed_dim=config.clip_dim,
        )
        # 3. Audio projection (windows -> tokens per latent frame)
        self.audio_proj = AudioProjection(config)
        # 4. Blocks
        self.blocks = nn.ModuleList([InfiniteTalkBlock(config) for _ in range(config.num_layers)])
        # 5. Head
        self.norm_out = FP32LayerNorm(config.dim, config.eps, elementwise_affine=False)
        self.proj_out = nn.Linear(config.dim, config.out_dim * math.prod(config.patch_size))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, config.dim) / config.dim**0.5)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: that of the block weights."""
        return self.patch_embedding.weight.dtype

    def quantize_blocks_to_fp8(self) -> int:
        """Store the blocks' linear weights as fp8 (`Fp8Linear`), computing in the current dtype. The audio adapter
        (switched between one and two speakers), the embeddings and the head keep theirs. Returns how many layers
        were quantised."""
        return replace_linears(self.blocks, lambda linear: Fp8Linear.quantize(linear, self.dtype), is_adapter)

    def expect_fp8_blocks(self, compute_dtype: torch.dtype) -> int:
        """On a model built on meta: the same layers as `quantize_blocks_to_fp8`, as empty fp8 layers that the
        streaming loader fills (quantising each weight as it arrives, so the bf16 model never exists whole)."""
        return replace_linears(self.blocks, lambda linear: Fp8Linear.placeholder(linear, compute_dtype), is_adapter)

    def cast_for_inference(self, dtype: torch.dtype) -> InfiniteTalkTransformer:
        """Cast weights to `dtype`, keeping `FP32_PARAMETERS` and the RoPE tables in float32 (works on meta too)."""
        for name, param in self.named_parameters():
            param.data = param.data.to(torch.float32 if keeps_fp32(name) else dtype)
        return self

    @torch.no_grad()
    def project_audio(self, audio_windows: torch.Tensor) -> torch.Tensor:
        """(speakers, frames, 5, 12, 768) wav2vec windows -> (speakers, T_lat, 32, 768) audio tokens (model dtype)."""
        return self.audio_proj(audio_windows.to(self.patch_embedding.weight.device))

    @torch.no_grad()
    def forward(
        self,
        x: torch.Tensor,
        timestep: float | torch.Tensor,
        text_context: torch.Tensor,
        clip_features: torch.Tensor,
        y: torch.Tensor,
        audio_tokens: torch.Tensor,
        ref_target_masks: torch.Tensor | None = None,
        capture: dict | None = None,
    ) -> torch.Tensor:
        c = self.config
        dtype, device = self.dtype, self.patch_embedding.weight.device
        self._check_inputs(x, y, audio_tokens, ref_target_masks)
        p_t, p_h, p_w = c.patch_size
        frames, rows, cols = x.shape[1] // p_t, x.shape[2] // p_h, x.shape[3] // p_w

        # 1. Patch & position embedding
        latent = torch.cat([x, y]).unsqueeze(0).to(device, dtype)  # (1, 36, T, H, W)
        freqs_cos, freqs_sin = self.rope(latent)  # (1, L, 1, d) interleaved
        # (1, L, 1, d/2); the tables may live on the CPU when the weights were streamed elsewhere.
        rotary = (freqs_cos[..., 0::2].to(device), freqs_sin[..., 0::2].to(device))
        patches = self.patch_embedding(latent)  # (1, dim, T', H', W')
        hidden = patches.flatten(2).transpose(1, 2).float()  # (1, L, dim) float32 residual stream

        # 2. Condition embeddings
        e, e0 = self._embed_time(timestep, device)  # (1, dim), (1, 6*dim) float32
        text = self._embed_text(text_context.to(device))  # (1, 512, dim)
        image = self.condition_embedder.image_embedder(
            clip_features.reshape(1, c.clip_tokens, c.clip_dim).to(device, dtype)
        )  # (1, 257, dim)
        context = torch.cat([image, text], dim=1).to(dtype)  # (1, 769, dim)
        masks = token_masks(ref_target_masks, (rows, cols)).to(device) if ref_target_masks is not None else None
        audio_tokens = audio_tokens.to(device, dtype)
        if capture is not None:
            capture.update(
                patch_embedding_out=patches,
                time_embedding_out=e,
                time_projection_out=e0,
                text_embedding_out=text,
                img_emb_out=image,
            )

        # 3. Blocks
        timestep_proj = e0.unflatten(1, (6, c.dim))  # (1, 6, dim)
        for index, block in enumerate(self.blocks):
            hidden = block(hidden, context, timestep_proj, rotary, audio_tokens, masks, capture, f"block{index}_")

        # 4. Head (float32) & unpatchify
        shift, scale = (self.scale_shift_table.float() + e[:, None]).chunk(2, dim=1)
        out = self.proj_out((self.norm_out(hidden) * (1 + scale) + shift).to(self.proj_out.weight.dtype))
        out = out.float().view(frames, rows, cols, p_t, p_h, p_w, c.out_dim)  # channel fastest
        return out.permute(6, 0, 3, 1, 4, 2, 5).reshape(c.out_dim, frames * p_t, rows * p_h, cols * p_w)

    def _embed_time(self, timestep: float | torch.Tensor, device: torch.device):
        """Sinusoid of the raw timestep in float64, [cos | sin] (upstream's order), then the float32 MLPs."""
        half = self.config.freq_dim // 2
        t = torch.as_tensor(timestep, dtype=torch.float64, device=device).reshape(1)
        angles = t[:, None] * torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=device) / half)
        sinusoid = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).float()  # (1, freq_dim)
        embedder = self.condition_embedder
        e = embedder.time_embedder(sinusoid.to(embedder.time_embedder.linear_1.weight.dtype)).float()
        e0 = embedder.time_proj(embedder.act_fn(e).to(embedder.time_proj.weight.dtype)).float()
        return e, e0

    def _embed_text(self, text_context: torch.Tensor) -> torch.Tensor:
        """Zero-pad the trimmed T5 output to text_len rows (the padded rows are attended, as upstream)."""
        c = self.config
        rows = text_context.reshape(-1, c.text_dim)
        if rows.shape[0] > c.text_len:
            raise ValueError(f"text context has {rows.shape[0]} rows, more than text_len {c.text_len}")
        padded = rows.new_zeros(c.text_len, c.text_dim)
        padded[: rows.shape[0]] = rows
        return self.condition_embedder.text_embedder(padded[None].to(self.dtype))

    def _check_inputs(self, x, y, audio_tokens, ref_target_masks) -> None:
        c = self.config
        if x.ndim != 4 or x.shape[0] != c.out_dim:
            raise ValueError(f"x must be ({c.out_dim}, T_lat, H_lat, W_lat); got {tuple(x.shape)}")
        if y.shape != (c.in_dim - c.out_dim, *x.shape[1:]):
            raise ValueError(
                f"y must be ({c.in_dim - c.out_dim}, {', '.join(map(str, x.shape[1:]))}); got {tuple(y.shape)}"
            )
        if any(size % p for size, p in zip(x.shape[1:], c.patch_size, strict=True)):
            raise ValueError(f"latent size {tuple(x.shape[1:])} is not a multiple of the patch {c.patch_size}")
        if (
            audio_tokens.ndim != 4
            or audio_tokens.shape[1] != x.shape[1] // c.patch_size[0]
            or audio_tokens.shape[2:] != (c.audio_tokens, c.audio_dim)
        ):
            raise ValueError(
                f"audio_tokens must be (speakers, {x.shape[1]}, {c.audio_tokens}, {c.audio_dim}) "
                f"from project_audio; got {tuple(audio_tokens.shape)}"
            )
        if audio_tokens.shape[0] not in (1, 2):
            raise ValueError(f"1 or 2 speakers are supported; got {audio_tokens.shape[0]}")
        if audio_tokens.shape[0] == 2 and ref_target_masks is None:
            raise ValueError("two speakers need ref_target_masks (person 1, person 2, background)")
