"""Parity: the whole streaming sampler against upstream's `generate_infinitetalk` run (`pipeline/`, README §8).

Runs OUR `pipeline.generate_clips` (the production loop) with the fixture's tiny DiT (`dit/`) and VAE (`vae/`),
its text contexts (`t5/`), CLIP features (`dit/single`), audio embedding (`audio/`), conditioning image and
parameters (`pipeline/meta.json`), then compares every recorded tensor: the conditioning, per-step latents,
timesteps and guidance-branch predictions, the noise draws in upstream's RNG order, final latents, decoded clips,
the final video and its uint8 frames.
The run happens once per fixture root; each group of tensors is one check.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.engine import conditioning_image, speaker_masks
from infinitetalk_engine.infinitetalk.models.vae import VaeArgs, load_vae
from infinitetalk_engine.infinitetalk.pipeline import (
    Conditioning,
    Hooks,
    SamplerSettings,
    generate_clips,
    to_uint8_frames,
)
from infinitetalk_engine.media.image import nearest_bucket

from . import Check
from ._compare import max_abs_error
from .dit import load_model

TOLERANCE = 1e-3  # README table: pipeline per-step latents, decoded frames (errors compound)
UINT8_TOLERANCE = 1.0  # uint8 frames: off-by-one allowed


def settings_from_meta(params: dict) -> SamplerSettings:
    return SamplerSettings(
        frame_num=params["frame_num"],
        motion_frames=params["motion_frame"],
        steps=params["sampling_steps"],
        shift=params["shift"],
        text_scale=params["text_guide_scale"],
        audio_scale=params["audio_guide_scale"],
        color_correction=params["color_correction_strength"],
        seed=params["seed"],
        max_frames=params["max_frames_num"],
    )


@functools.lru_cache(maxsize=2)
def _run(root: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return run(root, load_model(root))


def run(root: Path, dit) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Our pipeline with `dit` on the fixture's inputs: our recorded tensors, and the fixture's."""
    folder = root / "pipeline"
    meta = json.loads((folder / "meta.json").read_text())
    fixture = load_file(folder / "tensors.safetensors")
    settings = settings_from_meta(meta["params"])
    table = {key: tuple(size) for key, (size, _) in meta["bucket_table_used"].items()}

    # The conditioning image through the production path: upstream's bucket rule on the fixture's table, PIL
    # resize to cover and centre crop, then (p/255 - 0.5) * 2; one speaker: three all-ones masks.
    source = fixture["cond_image_hwc_uint8"].to(torch.uint8).numpy()  # (h, w, 3), values 0..255
    picture = Image.fromarray(source)
    bucket = nearest_bucket(table, picture.width, picture.height)
    image = conditioning_image(picture, bucket.height, bucket.width)
    texts = load_file(root / "t5" / "tensors.safetensors")
    clip_features = load_file(root / "dit" / "single" / "inputs.safetensors")["clip_fea"]
    audio = load_file(root / "audio" / "tensors.safetensors")["audio_emb"]  # (n, layers, width)
    cond = Conditioning(
        image=image,
        context=texts["context_prompt"],
        context_negative=texts["context_negative"],
        clip_features=clip_features,
        audio=[audio],
        ref_target_masks=speaker_masks(picture.width, picture.height, bucket.height, bucket.width, None, 1),
    )

    vae = load_vae(root / "vae" / "weights.safetensors", VaeArgs.from_fixture_config(root / "vae" / "config.json"))
    ours: dict[str, torch.Tensor] = {}
    clips = list(generate_clips(dit, vae, cond, settings, Hooks(trace=ours.__setitem__)))
    ours["clip_in"] = image[None, :, None]
    ours["clip0_ref_target_masks"] = ours["clip1_ref_target_masks"] = cond.ref_target_masks
    ours["final_video"] = torch.cat([c.frames.cpu() for c in clips], dim=1)
    ours["final_video_thwc_uint8"] = torch.from_numpy(to_uint8_frames(ours["final_video"]))
    return ours, fixture


def _names(fixture: dict, kind: str) -> list[str]:
    groups = {
        "noise draws": lambda k: k.startswith("randn_"),
        "conditioning": lambda k: k.endswith(("_y", "_audio", "_ref_target_masks")) or k == "clip_in",
        "timesteps": lambda k: "_step" in k and k.endswith("_t"),
        "latents": lambda k: k.endswith(("_latent_in", "_final_latent")),
        "predictions": lambda k: "_pred_" in k,
        "decoded clips": lambda k: k.endswith("_decoded"),
        "final video": lambda k: k == "final_video",
    }
    return sorted(k for k in fixture if groups[kind](k))


def _error(root: Path, kind: str) -> float:
    ours, fixture = _run(root)
    names = _names(fixture, kind)
    if not names:
        raise ValueError(f"no fixture tensors for {kind}")
    missing = [n for n in names if n not in ours]
    if missing:
        raise ValueError(f"our pipeline produced no {', '.join(missing)}")
    return max(max_abs_error(ours[n], fixture[n]) for n in names)


def _uint8_error(root: Path) -> float:
    ours, fixture = _run(root)
    return max_abs_error(ours["final_video_thwc_uint8"].int(), fixture["final_video_thwc_uint8"].int())


GROUPS = ("noise draws", "conditioning", "timesteps", "latents", "predictions", "decoded clips", "final video")
CHECKS = [Check(f"pipeline {kind}", TOLERANCE, lambda root, k=kind: _error(root, k)) for kind in GROUPS]
CHECKS.append(Check("pipeline uint8 frames", UINT8_TOLERANCE, _uint8_error))
