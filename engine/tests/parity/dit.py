"""Parity: the InfiniteTalk DiT against upstream's outputs and intermediates (`dit/`, README §1).

Each case runs once (cached per fixture root); every stored tensor is then its own check.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.loading import parameters_on_meta
from infinitetalk_engine.infinitetalk.models.transformer import InfiniteTalkTransformer
from infinitetalk_engine.infinitetalk.models.transformer_config import TransformerConfig
from infinitetalk_engine.infinitetalk.models.transformer_weights import load_transformer

from . import Check
from ._compare import max_abs_error

TOLERANCE = 1e-4  # README table: DiT outputs / intermediates, fp32
EXTRA_CONFIG_KEYS = ("audio_proj_blocks", "audio_proj_channels", "clip_feature_dim")

SINGLE_OUTPUTS = (
    "out",
    "patch_embedding_out",
    "time_embedding_out",
    "time_projection_out",
    "text_embedding_out",
    "img_emb_out",
    "audio_proj_out",
    "block0_self_attn_out",
    "block0_x_ref_attn_map",
    "block0_cross_attn_out",
    "block0_audio_cross_attn_out",
    "block0_out",
)
TWO_SPEAKER_OUTPUTS = (
    "out",
    "out_null_audio",
    "audio_proj_out",
    "block0_x_ref_attn_map",
    "block0_audio_cross_attn_out",
    "block0_out",
)


def fixture_config(root: Path) -> TransformerConfig:
    """The fixture DiT's config: upstream's `WanModel` kwargs plus the audio sizes stored beside them."""
    raw = json.loads((root / "dit" / "config.json").read_text())
    return TransformerConfig.from_wan_config({**raw["wan_model_kwargs"], **{k: raw[k] for k in EXTRA_CONFIG_KEYS}})


@functools.lru_cache(maxsize=2)
def load_model(root: Path) -> InfiniteTalkTransformer:
    """The fixture DiT in fp32 on the CPU, loaded by the production loader (strict)."""
    with parameters_on_meta():
        model = InfiniteTalkTransformer(fixture_config(root))
    weights = root / "dit" / "weights.safetensors"
    load_transformer(model, [weights], device="cpu").raise_if_incomplete([weights])
    return model


def run_dit(model: InfiniteTalkTransformer, root: Path, case: str) -> dict[str, torch.Tensor]:
    """`model` on the fixture case's inputs: `out`, `audio_proj_out` and the captured intermediates."""
    inputs = load_file(root / "dit" / case / "inputs.safetensors")
    with safe_open(str(root / "dit" / "single" / "inputs.safetensors"), "pt") as single:
        clip_features = single.get_tensor("clip_fea")  # not duplicated in two_speakers

    def forward(audio: torch.Tensor, capture=None):
        tokens = model.project_audio(audio)
        out = model(
            inputs["x"],
            inputs["t"],
            inputs["context"],
            clip_features,
            inputs["y"],
            tokens,
            inputs["ref_target_masks"],
            capture=capture,
        )
        return out, tokens

    results: dict[str, torch.Tensor] = {}
    results["out"], results["audio_proj_out"] = forward(inputs["audio"], capture=results)
    if case == "two_speakers":
        # The CFG "no audio" branch: a single all-zero stream.
        results["out_null_audio"], _ = forward(torch.zeros_like(inputs["audio"])[-1:])
    return results


@functools.lru_cache(maxsize=4)
def _run(root: Path, case: str) -> dict[str, torch.Tensor]:
    return run_dit(load_model(root), root, case)


def _error(root: Path, case: str, name: str) -> float:
    with safe_open(str(root / "dit" / case / "outputs.safetensors"), "pt") as outputs:
        expected = outputs.get_tensor(name)
    return max_abs_error(_run(root, case)[name], expected)


CHECKS = [
    Check(f"dit/{case} {name}", TOLERANCE, lambda root, c=case, n=name: _error(root, c, n))
    for case, names in (("single", SINGLE_OUTPUTS), ("two_speakers", TWO_SPEAKER_OUTPUTS))
    for name in names
]
