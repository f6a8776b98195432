"""`AudioProjection`: wav2vec2 windows per video frame -> audio tokens per latent frame (InfiniteTalk's `audio_proj`).

Input: (speakers, frames, window, layers, channels) with frames = 1 + vae_scale * n (81 for a clip) and window 5
(offsets -2..+2 around each video frame). Latent frame 0 is video frame 0 alone and takes its whole window (`proj1`).
Latent frame k >= 1 covers video frames 4k-3..4k and takes the first frame's offsets [-2..0], the centre of the
middle frames and the last frame's offsets [0..+2] (`proj1_vf`, 8 slots). Both go through ReLU, then the shared
`proj2` (ReLU) and `proj3`, which emits `audio_tokens` tokens of width `audio_dim`, and a LayerNorm (eps 1e-5).
Output: (speakers, latent frames, audio_tokens, audio_dim).

It does not depend on the timestep: run it once per clip (and once for the null audio) and reuse it every step.
"""

from __future__ import annotations

import torch
from torch import nn

from .transformer_config import TransformerConfig


class AudioProjection(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.window = config.audio_window
        self.vae_scale = config.vae_scale
        self.tokens = config.audio_tokens
        self.audio_dim = config.audio_dim
        self.layers, self.channels = config.audio_layers, config.audio_channels
        per_frame = config.audio_layers * config.audio_channels
        slots_later = config.audio_window + config.vae_scale - 1
        # 1. First latent frame / later latent frames.
        self.proj1 = nn.Linear(config.audio_window * per_frame, config.audio_intermediate_dim)
        self.proj1_vf = nn.Linear(slots_later * per_frame, config.audio_intermediate_dim)
        # 2. Shared trunk and token head.
        self.proj2 = nn.Linear(config.audio_intermediate_dim, config.audio_intermediate_dim)
        self.proj3 = nn.Linear(config.audio_intermediate_dim, config.audio_tokens * config.audio_dim)
        self.norm = nn.LayerNorm(config.audio_dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        if (
            windows.ndim != 5
            or windows.shape[2:] != (self.window, self.layers, self.channels)
            or (windows.shape[1] - 1) % self.vae_scale
        ):
            raise ValueError(
                f"audio windows must be (speakers, 1 + {self.vae_scale}*n, {self.window}, "
                f"{self.layers}, {self.channels}); got {tuple(windows.shape)}"
            )
        windows = windows.to(self.proj1.weight.dtype)
        centre = self.window // 2

        # 1. Latent frame 0: the full window of video frame 0.
        first = windows[:, 0].flatten(1)  # (S, W*layers*C)
        first = torch.relu(self.proj1(first))[:, None]  # (S, 1, inter)

        # 2. Later latent frames: 8 slots from each group of vae_scale video frames.
        groups = windows[:, 1:].unflatten(1, (-1, self.vae_scale))  # (S, n, 4, W, layers, C)
        slots = torch.cat(
            [
                groups[:, :, 0, : centre + 1],  # first frame: offsets -2..0
                groups[:, :, 1:-1, centre],  # middle frames: centre only
                groups[:, :, -1, centre:],  # last frame: offsets 0..+2
            ],
            dim=2,
        )  # (S, n, 8, layers, C)
        later = torch.relu(self.proj1_vf(slots.flatten(2)))  # (S, n, inter)

        # 3. Shared trunk -> tokens -> LayerNorm (in float32, as upstream).
        hidden = torch.relu(self.proj2(torch.cat([first, later], dim=1)))  # (S, T_lat, inter)
        tokens = self.proj3(hidden).unflatten(-1, (self.tokens, self.audio_dim))  # (S, T_lat, N, D)
        return nn.functional.layer_norm(
            tokens.float(),
            (self.audio_dim,),
            self.norm.weight.float(),
            self.norm.bias.float(),
            self.norm.eps,
        ).to(tokens.dtype)
