"""Decode any speech file to 16 kHz mono float32 and normalise its loudness, as InfiniteTalk expects.

Conventions (../shared/reference/infinitetalk-engine.md §3, parity README §3): 16 kHz mono; loudness normalised to
-23 LUFS (ITU-R BS.1770, pyloudnorm) unless the measured loudness is beyond +/-100 LUFS (silence), in which case the
samples are returned unchanged; the video has `int(seconds * 25)` frames.
"""
from __future__ import annotations

import math
from typing import Optional

import av
import numpy as np

from ..engines.base import EngineError

SAMPLE_RATE = 16_000
TARGET_LUFS = -23.0
SILENCE_LUFS = 100.0   # |loudness| beyond this means silence: leave the samples as they are
FPS = 25


def load_audio(path: str, max_seconds: Optional[float] = None) -> np.ndarray:
    """Decode the first audio stream of `path` (WAV, MP3, M4A/AAC, OGG/Vorbis/Opus, FLAC, ...) to 16 kHz mono.

    Returns float32 samples, shape (n,). Raises `EngineError("bad_audio")` for a missing, unreadable, empty or
    too long file (`max_seconds`).
    """
    try:
        container = av.open(path)
    except (OSError, av.FFmpegError, ValueError) as exc:
        raise EngineError("bad_audio", f"audio could not be opened: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise EngineError("bad_audio", "the file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        max_samples = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))  # (1, n) packed mono -> (n,)
                    total += chunks[-1].size
                if max_samples is not None and total > max_samples:
                    raise EngineError("bad_audio", f"audio is longer than the limit of {max_seconds:g} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            raise EngineError("bad_audio", f"audio could not be decoded: {exc}") from exc
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise EngineError("bad_audio", "the audio stream has no samples")
    if not np.isfinite(samples).all():
        raise EngineError("bad_audio", "the audio contains NaN or infinite samples")
    if max_samples is not None and samples.size > max_samples:
        raise EngineError("bad_audio", f"audio is longer than the limit of {max_seconds:g} s")
    return samples


def measure_loudness(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness in LUFS (BS.1770); -inf for silence. Audio shorter than one 400 ms block gives -inf."""
    import pyloudnorm  # imports scipy.signal (seconds): paid when an engine loads, not when the process starts

    meter = pyloudnorm.Meter(sample_rate)
    if samples.size < int(meter.block_size * sample_rate):
        return -math.inf
    return float(meter.integrated_loudness(samples.astype(np.float64)))


def normalize_loudness(samples: np.ndarray, sample_rate: int = SAMPLE_RATE,
                       target_lufs: float = TARGET_LUFS) -> np.ndarray:
    """Scale to `target_lufs` (computed in float64, returned as float32), unless the audio is silent."""
    loudness = measure_loudness(samples, sample_rate)
    if not math.isfinite(loudness) or abs(loudness) > SILENCE_LUFS:
        return samples.astype(np.float32, copy=True)
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    return (samples.astype(np.float64) * gain).astype(np.float32)


def count_video_frames(n_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """`int(seconds * fps)`: the number of video frames the model makes for this much audio."""
    return int(n_samples / sample_rate * fps)


def load_speech(path: str, max_seconds: Optional[float] = None) -> tuple[np.ndarray, int]:
    """Decode + loudness-normalise; returns (samples, n_video_frames). Audio shorter than one frame is bad_audio."""
    samples = normalize_loudness(load_audio(path, max_seconds))
    n_frames = count_video_frames(samples.size)
    if n_frames < 1:
        raise EngineError("bad_audio", f"audio is {samples.size / SAMPLE_RATE:.3f} s long, shorter than one video frame")
    return samples, n_frames
