"""wav2vec2 speech features at the video frame rate: transformers' `Wav2Vec2Model` modules, our forward.

InfiniteTalk's forward differs from the stock one in one place: the 50 Hz CNN features are linearly resampled in time
to the video frame count (25 fps, `align_corners=True`) BEFORE the feature projection and the transformer. All 12
transformer layer outputs are kept: (n_frames, 12, hidden). Runs in fp32.
Weights come from an HF folder (`chinese-wav2vec2-base/`) in the pretraining layout: keys prefixed `wav2vec2.`,
the positional conv's weight norm under the legacy `weight_g`/`weight_v` names, and pretraining heads
(`quantizer.*`, `project_q.*`, `project_hid.*`) that feature extraction does not use.
Reference: ../shared/reference/infinitetalk-engine.md §3, ../shared/parity/README.md §3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2Model
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2Encoder

from ..loading import Converter, load_weights, parameters_on_meta, weights_error

SAMPLE_RATE = 16000
VIDEO_FPS = 25
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PRETRAINING_HEADS = ("quantizer.", "project_q.", "project_hid.")
NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean unit-variance epsilon


def video_frame_count(num_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = VIDEO_FPS) -> int:
    """Video frames covered by the audio, rounded down: `int(seconds * 25)` as upstream computes it."""
    return int(num_samples / sample_rate * fps)


class AudioEncoder:
    """A loaded wav2vec2 plus its preprocessing setting. Call it on a 16 kHz mono waveform."""

    def __init__(self, model: Wav2Vec2Model, normalize: bool = True):
        if not isinstance(model.encoder, Wav2Vec2Encoder):
            raise ValueError("only the post-LayerNorm wav2vec2 encoder (do_stable_layer_norm=false) is supported")
        self.model = model
        self.normalize = normalize

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __call__(self, waveform, n_frames: int | None = None) -> torch.Tensor:
        """(samples,) 16 kHz mono -> (n_frames, num_layers, hidden) float32 on the CPU; `n_frames` defaults to
        `video_frame_count(samples)`."""
        samples = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
        if samples.dim() != 1:
            raise ValueError(f"expected a mono waveform (samples,), got shape {tuple(samples.shape)}")
        n_frames = video_frame_count(samples.numel()) if n_frames is None else n_frames
        x = normalize_waveform(samples) if self.normalize else samples
        with torch.no_grad():
            conv = conv_features(self.model, x)  # (1, C, T_50hz)
            hidden = project_features(self.model, resample_frames(conv, n_frames))  # (1, n, hidden)
            layers = layer_outputs(self.model, hidden)  # num_layers x (1, n, hidden)
        return torch.stack(layers, dim=2)[0].float().cpu()  # (n, num_layers, hidden)


# 1. Waveform -> model input.


def normalize_waveform(samples: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance: `(x - mean) / sqrt(var + 1e-7)` (population variance), in float32."""
    x = samples.float()
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + NORMALIZE_EPS)


# 2. Model input -> per-layer features.


def conv_features(model: Wav2Vec2Model, input_values: torch.Tensor) -> torch.Tensor:
    """(samples,) -> (1, conv_dim, T) CNN feature-encoder output at 50 Hz."""
    param = next(model.parameters())
    return model.feature_extractor(input_values.to(param.device, param.dtype)[None])


def resample_frames(conv: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(1, C, T) -> (1, n_frames, C): linear interpolation in time with `align_corners=True`."""
    return F.interpolate(conv, size=n_frames, mode="linear", align_corners=True).transpose(1, 2)


def project_features(model: Wav2Vec2Model, frames: torch.Tensor) -> torch.Tensor:
    """(1, n, C) -> (1, n, hidden): LayerNorm + Linear of the feature projection."""
    hidden, _ = model.feature_projection(frames)
    return hidden


def layer_outputs(model: Wav2Vec2Model, hidden: torch.Tensor) -> list[torch.Tensor]:
    """The output of every transformer layer (the stock model's `hidden_states[1:]`), for the post-LN encoder:
    positional conv added, LayerNorm, then the layers in order."""
    encoder = model.encoder
    hidden = encoder.layer_norm(hidden + encoder.pos_conv_embed(hidden))
    outputs = []
    for layer in encoder.layers:
        hidden = layer(hidden, attention_mask=None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        outputs.append(hidden)
    return outputs


# 3. Loading.


def wav2vec2_converter(model_keys: set[str]) -> Converter:
    """Pretraining-layout keys -> `Wav2Vec2Model` keys: strip `wav2vec2.`, drop pretraining heads (and the
    training-only `masked_spec_embed` when the model has none), rename legacy weight-norm names."""

    def convert(key: str, value: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        if key.startswith(PRETRAINING_HEADS):
            return []
        key = key.removeprefix("wav2vec2.")
        key = key.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        key = key.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        if key == "masked_spec_embed" and key not in model_keys:
            return []
        return [(key, value)]

    return convert


def load_wav2vec2(
    folder: str | Path, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> AudioEncoder:
    """wav2vec2 from an HF folder: `config.json`, `preprocessor_config.json` (optional: `do_normalize`, default
    true) and `model.safetensors` or `pytorch_model.bin`. Never reaches a hub."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise weights_error(config_path, "missing")
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise weights_error(folder, f"no weights file ({' or '.join(WEIGHT_FILES)})")
    try:
        config = Wav2Vec2Config.from_json_file(str(config_path))
    except Exception as exc:
        raise weights_error(config_path, f"not a wav2vec2 config ({exc})") from exc
    normalize = True
    preprocessor = folder / "preprocessor_config.json"
    if preprocessor.is_file():
        normalize = bool(json.loads(preprocessor.read_text()).get("do_normalize", True))
    with parameters_on_meta():
        model = Wav2Vec2Model(config)
    convert = wav2vec2_converter(set(model.state_dict()))
    load_weights(model, weights, name="wav2vec2", convert=convert, dtype=dtype, device=device)
    return AudioEncoder(model, normalize)
