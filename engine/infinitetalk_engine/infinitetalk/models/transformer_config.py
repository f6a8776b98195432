"""`TransformerConfig`: the shape of the InfiniteTalk DiT (Wan2.1-I2V + audio adapter), read from Wan's config.json.

Wan's own config names (`dim`, `ffn_dim`, `num_heads`, `num_layers`, `in_dim`, `out_dim`, `text_len`, `text_dim`,
`freq_dim`, `eps`, `patch_size`, `model_type`) and the InfiniteTalk constructor names (`audio_window`,
`intermediate_dim`, `output_dim`, `context_tokens`, `vae_scale`, ...) map one to one; anything a real config leaves
out takes the 14B value. Settings upstream allows but InfiniteTalk never uses (windowed attention, no q/k norm, ...)
are refused with a `ValueError` (the engine reports it as `load_failed`) instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class TransformerConfig:
    # 1. The Wan2.1 I2V DiT.
    dim: int = 5120
    ffn_dim: int = 13824
    num_heads: int = 40
    num_layers: int = 40
    in_dim: int = 36  # noisy latent 16 | mask 4 | reference latent 16
    out_dim: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096  # umT5-XXL width
    text_len: int = 512  # text rows after zero padding (all of them are attended)
    freq_dim: int = 256  # sinusoidal timestep features
    eps: float = 1e-6
    clip_dim: int = 1280  # CLIP ViT-H/14 penultimate tokens fed to the image embedder
    clip_tokens: int = 257
    # 2. The InfiniteTalk audio adapter.
    audio_window: int = 5  # wav2vec frames per video frame (offsets -2..+2)
    vae_scale: int = 4  # video frames per latent frame (after the first)
    audio_layers: int = 12  # wav2vec2 transformer layers stacked per frame
    audio_channels: int = 768  # wav2vec2 width
    audio_intermediate_dim: int = 512
    audio_dim: int = 768  # width of the audio tokens seen by the audio cross-attention
    audio_tokens: int = 32  # audio tokens per latent frame and speaker

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_max_positions(self) -> int:
        return 1024  # upstream's table size per RoPE axis

    @classmethod
    def infinitetalk_14b(cls) -> TransformerConfig:
        """The released InfiniteTalk-14B (Wan2.1-I2V-14B-480P + InfiniteTalk adapter)."""
        return cls()

    @classmethod
    def from_wan_config(cls, config: Mapping[str, Any]) -> TransformerConfig:
        """From Wan's `config.json` (or upstream's `WanModel` kwargs, optionally with `audio_proj_blocks`,
        `audio_proj_channels`, `clip_feature_dim`). Keys starting with `_` (diffusers metadata) are skipped."""
        values: dict[str, Any] = {}
        for key, value in config.items():
            if key.startswith("_"):
                continue
            if key in _RENAMED:
                values[_RENAMED[key]] = value
            elif key in _FIELD_NAMES:
                values[key] = value
            elif key in _FIXED:
                if _normalise(value) != _normalise(_FIXED[key]):
                    raise ValueError(
                        f"DiT config: {key}={value!r} is not supported (InfiniteTalk needs {_FIXED[key]!r})"
                    )
            else:
                raise ValueError(f"DiT config: unknown key {key!r}")
        if "patch_size" in values:
            values["patch_size"] = tuple(int(p) for p in values["patch_size"])
        config_out = replace(cls(), **values)
        config_out.validate()
        return config_out

    def validate(self) -> None:
        problems = []
        if self.dim % self.num_heads:
            problems.append(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        elif self.head_dim % 2:
            problems.append(f"head_dim {self.head_dim} must be even (RoPE pairs)")
        if len(self.patch_size) != 3:
            problems.append(f"patch_size {self.patch_size} must have 3 entries")
        if self.text_len != 512:
            # diffusers' cross-attention splits [image | text] assuming exactly 512 text rows.
            problems.append(f"text_len {self.text_len} is not supported (only 512)")
        if self.audio_window % 2 == 0 or self.vae_scale < 2:
            problems.append(f"audio_window {self.audio_window} must be odd and vae_scale {self.vae_scale} >= 2")
        if problems:
            raise ValueError("DiT config: " + "; ".join(problems))


_FIELD_NAMES = {f.name for f in fields(TransformerConfig)}

# Upstream / fixture names that differ from ours.
_RENAMED = {
    "intermediate_dim": "audio_intermediate_dim",
    "output_dim": "audio_dim",
    "context_tokens": "audio_tokens",
    "audio_proj_blocks": "audio_layers",
    "audio_proj_channels": "audio_channels",
    "clip_feature_dim": "clip_dim",
}

# Upstream switches whose only value InfiniteTalk uses (and the only one implemented here).
_FIXED = {
    "model_type": "i2v",
    "window_size": [-1, -1],
    "qk_norm": True,
    "cross_attn_norm": True,
    "norm_input_visual": True,
    "norm_output_audio": True,
}


def _normalise(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
