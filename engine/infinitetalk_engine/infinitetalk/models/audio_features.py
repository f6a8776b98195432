"""Speech features of long audio, computed window by window as the sampler reads them, so that neither host nor GPU
memory grows with the audio's length.

Audio up to `WHOLE_TRACK_FRAMES` (60 s) is encoded whole, exactly as upstream (`AudioEncoder.__call__`). Longer audio
gets a `StreamedFeatures`: the sampler asks for the frames of one clip at a time (`features[indices]`), and the
features of a window around them are computed then (`WINDOW_FRAMES` of video frames, with `CONTEXT_FRAMES` of audio
on each side that the transformer sees but that are not used), and kept until a request leaves the window.

What is exact and what is not:
- the waveform's zero-mean unit-variance normalisation and the first conv layer's GroupNorm (over the whole track,
  per channel) use statistics gathered in one streaming pass over the track (float64 sums);
- the CNN feature encoder runs on chunks whose sample ranges align with its stride (320 samples), so every 50 Hz
  frame sees exactly the samples it sees whole;
- the 50 Hz -> 25 fps resampling uses the whole track's positions (`align_corners=True`);
- the transformer attends within its window only (upstream attends over the whole track): with 10 s of context on
  each side the difference is small, and it is the one approximation. Measured on tiny random weights by
  `engine/tests/test_audio_features.py`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .audio_encoder import NORMALIZE_EPS, AudioEncoder, layer_outputs, project_features

WHOLE_TRACK_FRAMES = 1500  # 60 s at 25 fps: shorter audio is encoded whole, as upstream
WINDOW_FRAMES = 1000  # video frames computed per window (40 s)
CONTEXT_FRAMES = 250  # 10 s of context on each side of a window
CONV_CHUNK_FRAMES = 500  # 50 Hz frames of the CNN encoder per chunk (10 s): bounds its first layer's activations


def speech_features(encoder: AudioEncoder, track, n_frames: int):
    """(n_frames, layers, hidden) features of `track` (16 kHz samples read by `read(start, stop)`, `chunks()`,
    `size`, `track[a:b]`: `media.audio.SpeechTrack`): a tensor for audio up to 60 s, else `StreamedFeatures`."""
    if n_frames <= WHOLE_TRACK_FRAMES:
        return encoder(track[0 : track.size], n_frames)
    return StreamedFeatures(encoder, track, n_frames)


class StreamedFeatures:
    """Features read like a tensor of shape (n, layers, hidden) by integer index tensors, computed by window."""

    def __init__(self, encoder: AudioEncoder, track, n_frames: int):
        self.encoder, self.track, self.n = encoder, track, n_frames
        config = encoder.model.config
        self.shape = torch.Size((n_frames, config.num_hidden_layers, config.hidden_size))
        self.kernels, self.strides = list(config.conv_kernel), list(config.conv_stride)
        self.total_stride = math.prod(self.strides)
        self.receptive_field = _receptive_field(self.kernels, self.strides)
        self.conv_frames = _conv_length(track.size, self.kernels, self.strides)  # T at 50 Hz, whole track
        self.mean, self.std = self._waveform_statistics() if encoder.normalize else (0.0, 1.0)
        self.group_stats = self._group_norm_statistics()
        self._window: tuple[int, int, torch.Tensor] | None = None  # (first frame, end, features)
        self.windows_computed = 0

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(index)
        lo, hi = int(index.min()), int(index.max())
        if not 0 <= lo <= hi < self.n:
            raise IndexError(f"frames {lo}..{hi} outside 0..{self.n - 1}")
        first, _end, rows = self._rows_covering(lo, hi)
        return rows[index - first]

    # MARK: - windows

    def _rows_covering(self, lo: int, hi: int) -> tuple[int, int, torch.Tensor]:
        if self._window is not None and self._window[0] <= lo and hi < self._window[1]:
            return self._window
        start, stop = max(0, lo - CONTEXT_FRAMES), min(self.n, max(hi + 1, lo + WINDOW_FRAMES) + CONTEXT_FRAMES)
        features = self._transformer(start, stop)
        keep_from = start if start == 0 else lo  # rows near a window's edge lack their context: not reused
        keep_to = stop if stop == self.n else stop - CONTEXT_FRAMES
        self._window = (keep_from, max(keep_to, hi + 1), features[keep_from - start :])
        self.windows_computed += 1
        return self._window

    def _transformer(self, start: int, stop: int) -> torch.Tensor:
        """Features of video frames [start, stop) with only those frames as the transformer's context."""
        scale = (self.conv_frames - 1) / (self.n - 1) if self.n > 1 else 0.0
        positions = torch.arange(start, stop, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)
        low = positions.floor().long().clamp(max=self.conv_frames - 1)
        high = (low + 1).clamp(max=self.conv_frames - 1)
        first, last = int(low[0]), int(high[-1])
        conv = self._conv(first, last + 1)  # (C, frames first..last)
        weight = (positions - low.float()).to(conv.device)[None, :]
        resampled = conv[:, low - first] * (1 - weight) + conv[:, high - first] * weight  # (C, stop - start)
        with torch.no_grad():
            hidden = project_features(self.encoder.model, resampled.T[None])
            layers = layer_outputs(self.encoder.model, hidden)
        return torch.stack(layers, dim=2)[0].float().cpu()

    # MARK: - CNN encoder

    def _conv(self, first: int, end: int) -> torch.Tensor:
        """50 Hz CNN features of frames [first, end): (C, end - first), in chunks aligned with the stride."""
        pieces = []
        for chunk_start in range(first, end, CONV_CHUNK_FRAMES):
            chunk_end = min(end, chunk_start + CONV_CHUNK_FRAMES)
            samples = self._normalized(
                chunk_start * self.total_stride, (chunk_end - 1) * self.total_stride + self.receptive_field
            )
            pieces.append(self._conv_stack(samples))
        return torch.cat(pieces, dim=1)

    def _conv_stack(self, samples: torch.Tensor) -> torch.Tensor:
        model = self.encoder.model
        param = next(model.parameters())
        x = samples.to(param.device, param.dtype)[None, None]
        with torch.no_grad():
            for index, layer in enumerate(model.feature_extractor.conv_layers):
                if index == 0 and self.group_stats is not None:
                    mean, std = (s.to(x.device, x.dtype) for s in self.group_stats)
                    norm = layer.layer_norm
                    x = (layer.conv(x) - mean[:, None]) / std[:, None] * norm.weight[:, None] + norm.bias[:, None]
                    x = layer.activation(x)
                else:
                    x = layer(x)
        return x[0]

    def _normalized(self, start: int, stop: int) -> torch.Tensor:
        samples = torch.from_numpy(self.track.read(start, stop))
        return (samples - self.mean) / self.std

    # MARK: - whole-track statistics (one streaming pass each)

    def _waveform_statistics(self) -> tuple[float, float]:
        total = squares = 0.0
        for chunk in self.track.chunks():
            chunk64 = chunk.astype(np.float64)
            total += chunk64.sum()
            squares += np.square(chunk64).sum()
        mean = total / self.track.size
        variance = max(squares / self.track.size - mean * mean, 0.0)
        return mean, math.sqrt(variance + NORMALIZE_EPS)

    def _group_norm_statistics(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-channel mean and std of the first conv layer's output over the whole track (its GroupNorm has one
        group per channel); `None` for a layer-norm feature encoder (normalised per frame: nothing global)."""
        first = self.encoder.model.feature_extractor.conv_layers[0]
        norm = getattr(first, "layer_norm", None)
        if not isinstance(norm, torch.nn.GroupNorm):
            return None
        if norm.num_groups != norm.num_channels:
            raise ValueError("only a GroupNorm with one group per channel is supported (wav2vec2's)")
        kernel, stride = self.kernels[0], self.strides[0]
        outputs = _conv_length(self.track.size, [kernel], [stride])
        chunk = CONV_CHUNK_FRAMES * self.total_stride // stride  # first-layer frames per chunk
        param = next(self.encoder.model.parameters())
        total = squares = None
        with torch.no_grad():
            for first_out in range(0, outputs, chunk):
                end_out = min(outputs, first_out + chunk)
                samples = self._normalized(first_out * stride, (end_out - 1) * stride + kernel)
                y = first.conv(samples.to(param.device, param.dtype)[None, None])[0].double()
                total = y.sum(dim=1) if total is None else total + y.sum(dim=1)
                squares = (y * y).sum(dim=1) if squares is None else squares + (y * y).sum(dim=1)
        mean = total / outputs
        variance = (squares / outputs - mean * mean).clamp(min=0)
        return mean.float(), (variance + norm.eps).sqrt().float()


def _conv_length(samples: int, kernels: list[int], strides: list[int]) -> int:
    for kernel, stride in zip(kernels, strides, strict=True):
        samples = (samples - kernel) // stride + 1
    return samples


def _receptive_field(kernels: list[int], strides: list[int]) -> int:
    """Input samples one output frame of the CNN encoder sees (400 for wav2vec2)."""
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * jump
        jump *= stride
    return field


__all__ = ["StreamedFeatures", "speech_features"]
