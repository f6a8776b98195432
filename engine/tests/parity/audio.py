"""Parity: the wav2vec2 feature pipeline (`audio/`, README §3) and the clip-0 audio windows.

The loudness row uses the media pipeline's `normalize_loudness`; every later row starts from the fixture's
normalised waveform so that each stage is checked on its own.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.models.audio_encoder import (
    conv_features,
    load_wav2vec2,
    normalize_waveform,
    project_features,
    resample_frames,
    video_frame_count,
)
from infinitetalk_engine.infinitetalk.sampler.audio_windows import clip_windows, window_indices
from infinitetalk_engine.media.audio import normalize_loudness

from . import Check
from ._compare import max_abs_error, tensor_checks

TOLERANCE = 1e-4  # README table: wav2vec2 in fp32


def _ours(folder: Path, fixture: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    encoder = load_wav2vec2(folder / "tiny_wav2vec2")
    waveform = fixture["waveform_loudnorm"]
    n_frames = video_frame_count(waveform.numel())
    frame_num = fixture["clip0_window"].shape[0]
    with torch.no_grad():
        conv = conv_features(encoder.model, fixture["input_values"])
        projected = project_features(encoder.model, resample_frames(conv, n_frames))
    embedding = encoder(waveform.numpy())
    return {
        "input_values": normalize_waveform(waveform),
        "conv_features": conv,
        "feature_projection_out": projected,
        "audio_emb": embedding,
        "clip0_window": clip_windows(embedding, 0, frame_num),
        "clip0_window_indices": window_indices(0, frame_num, embedding.shape[0]),
    }


def _loudness_error(root: Path) -> float:
    fixture = load_file(root / "audio" / "tensors.safetensors")
    ours = torch.from_numpy(normalize_loudness(fixture["waveform"].numpy()))  # the function production calls
    return max_abs_error(ours, fixture["waveform_loudnorm"])


NAMES = ("input_values", "conv_features", "feature_projection_out", "audio_emb", "clip0_window", "clip0_window_indices")
CHECKS = [
    Check("audio waveform_loudnorm", TOLERANCE, _loudness_error),
    *tensor_checks("audio", _ours, {name: 0.0 if name == "clip0_window_indices" else TOLERANCE for name in NAMES}),
]
