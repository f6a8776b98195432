"""Wan 2.1 causal 3D VAE: diffusers' `AutoencoderKLWan` loaded from `Wan2.1_VAE.pth`, with Wan's latent scaling.

Encoding is causal and chunked (first frame alone, then 4 frames at a time with cached conv context, as diffusers
does); only the mean of the posterior is used. Latents are normalised per channel with the 16 Wan2.1 constants:
`z = (mu - mean) * (1/std)`, undone before decoding. Decoding runs one latent frame at a time (diffusers' cache),
so memory grows with resolution, not clip length; spatial tiling is an opt-in for large frames. Runs in fp32.
Reference: ../shared/parity/README.md §6.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from ..loading import WeightsSource, load_weights, parameters_on_meta

WAN21_LATENTS_MEAN = (
    -0.7571,
    -0.7089,
    -0.9113,
    0.1075,
    -0.1745,
    0.9653,
    -0.1517,
    1.5508,
    0.4134,
    -0.0715,
    0.5517,
    -0.3632,
    -0.1922,
    -0.9497,
    0.2503,
    -0.2921,
)
WAN21_LATENTS_STD = (
    2.8184,
    1.4541,
    2.3275,
    2.6558,
    1.2196,
    1.7708,
    2.6052,
    2.0743,
    3.2687,
    2.1526,
    2.8652,
    1.5579,
    1.6382,
    1.1253,
    2.8251,
    1.9160,
)


@dataclass(frozen=True)
class VaeArgs:
    """Shape of the Wan VAE in Wan's names, plus the latent normalisation. The default is Wan2.1's VAE."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = field(default=WAN21_LATENTS_MEAN)
    latents_std: tuple[float, ...] = field(default=WAN21_LATENTS_STD)

    @classmethod
    def wan21(cls) -> VaeArgs:
        return cls()

    @classmethod
    def from_fixture_config(cls, path: str | Path) -> VaeArgs:
        """From a parity fixture's `vae/config.json` (Wan's `vae_kwargs` plus the mean/std lists)."""
        config = json.loads(Path(path).read_text())
        kwargs = config["vae_kwargs"]
        return cls(
            base_dim=kwargs["dim"],
            z_dim=kwargs["z_dim"],
            dim_mult=tuple(kwargs["dim_mult"]),
            num_res_blocks=kwargs["num_res_blocks"],
            attn_scales=tuple(kwargs.get("attn_scales", ())),
            temporal_downsample=tuple(kwargs["temperal_downsample"]),
            latents_mean=tuple(config.get("latents_mean", WAN21_LATENTS_MEAN)),
            latents_std=tuple(config.get("latents_std", WAN21_LATENTS_STD)),
        )

    def build(self) -> AutoencoderKLWan:
        return AutoencoderKLWan(
            base_dim=self.base_dim,
            z_dim=self.z_dim,
            dim_mult=list(self.dim_mult),
            num_res_blocks=self.num_res_blocks,
            attn_scales=list(self.attn_scales),
            temperal_downsample=list(self.temporal_downsample),
            dropout=0.0,
            latents_mean=list(self.latents_mean),
            latents_std=list(self.latents_std),
        )


class WanVae:
    """Encode videos to normalised latents and back. `video` tensors are (3, T, H, W) in [-1, 1]; latents are
    (16, 1 + (T-1)//4, H/8, W/8)."""

    def __init__(self, model: AutoencoderKLWan, args: VaeArgs):
        self.model = model
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.mean = torch.tensor(args.latents_mean, dtype=torch.float32, device=self.device).view(-1, 1, 1, 1)
        self.inv_std = 1.0 / torch.tensor(args.latents_std, dtype=torch.float32, device=self.device).view(-1, 1, 1, 1)

    def enable_tiling(self, tile_size: int = 256, tile_stride: int = 192) -> None:
        """Decode/encode large frames in overlapping spatial tiles (pixels): bounded memory, tiny seams blending."""
        self.model.enable_tiling(tile_size, tile_size, tile_stride, tile_stride)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(3, T, H, W) in [-1, 1] -> normalised latent (16, T_lat, H/8, W/8), float32. T must be 1 + 4k."""
        assert video.dim() == 4 and video.shape[0] == 3, f"expected (3, T, H, W), got {tuple(video.shape)}"
        assert (video.shape[1] - 1) % 4 == 0, f"frame count must be 1 + 4k, got {video.shape[1]}"
        x = video.to(self.device, self.dtype)[None]  # (1, 3, T, H, W)
        mu = self.model.encode(x).latent_dist.mean[0].float()  # (16, T_lat, h, w)
        return (mu - self.mean) * self.inv_std

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Normalised latent (16, T_lat, h, w) -> video (3, 1 + 4*(T_lat-1), 8h, 8w) clamped to [-1, 1], float32.

        `clamp=False` gives the decoder's own output before diffusers clamps it (what upstream's fixtures call
        `decoded_unclamped`): the same decode, with the per-frame decoder outputs collected by a forward hook."""
        assert latent.dim() == 4, f"expected (16, T_lat, h, w), got {tuple(latent.shape)}"
        z = latent.to(self.device, torch.float32) / self.inv_std + self.mean
        if clamp:
            return self.model.decode(z[None].to(self.dtype)).sample[0].float()
        assert not self.model.use_tiling, "the unclamped decode reads whole frames, not tiles"
        frames: list[torch.Tensor] = []
        hook = self.model.decoder.register_forward_hook(lambda _module, _inputs, output: frames.append(output))
        try:
            self.model.decode(z[None].to(self.dtype))
        finally:
            hook.remove()
        return torch.cat(frames, dim=2)[0].float()


def wan_vae_key(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """One Wan VAE key -> diffusers' name (the converter renames key by key; keys it does not know pass through
    and are reported as unexpected)."""
    return list(convert_wan_vae_to_diffusers({key: tensor}).items())


def load_vae(
    source: WeightsSource,
    args: VaeArgs = VaeArgs(),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> WanVae:
    """The VAE from Wan's checkpoint (`Wan2.1_VAE.pth`) or a dict in Wan key names."""
    with parameters_on_meta():
        model = args.build()
    load_weights(model, source, name="VAE", convert=wan_vae_key, dtype=dtype, device=device)
    return WanVae(model, args)
