"""Parity: the Wan VAE on diffusers, loaded from Wan key names (`vae/`, README §6)."""

from __future__ import annotations

from pathlib import Path

import torch

from infinitetalk_engine.infinitetalk.models.vae import VaeArgs, load_vae

from ._compare import tensor_checks

TOLERANCE = 1e-4  # README table: VAE in fp32


def _ours(folder: Path, fixture: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    args = VaeArgs.from_fixture_config(folder / "config.json")
    vae = load_vae(folder / "weights.safetensors", args)
    clamped = vae.decode(fixture["latent"])
    return {
        "latent": vae.encode(fixture["video"]),
        "latent_first_frame_only": vae.encode(fixture["video"][:, :1]),
        "decoded": clamped,
        "decoded_unclamped": vae.decode(fixture["latent"], clamp=False),
        # Our built-in Wan2.1 constants (used in production), not the fixture config's copy.
        "latents_mean": torch.tensor(VaeArgs.wan21().latents_mean),
        "latents_std": torch.tensor(VaeArgs.wan21().latents_std),
    }


NAMES = ("latent", "latent_first_frame_only", "decoded", "decoded_unclamped", "latents_mean", "latents_std")
CHECKS = tensor_checks("vae", _ours, dict.fromkeys(NAMES, TOLERANCE))
