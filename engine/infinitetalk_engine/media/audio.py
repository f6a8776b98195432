"""Decode any speech file to 16 kHz mono float32 and normalise its loudness, as InfiniteTalk expects.

Conventions (../shared/reference/infinitetalk-engine.md §3, parity README §3): 16 kHz mono; loudness normalised to
-23 LUFS (ITU-R BS.1770, pyloudnorm) unless the measured loudness is beyond +/-100 LUFS (silence), in which case the
samples are returned unchanged; the video has `int(seconds * 25)` frames.
"""

from __future__ import annotations

import math

import av
import numpy as np

from ..contract import EngineError

SAMPLE_RATE = 16_000
TARGET_LUFS = -23.0
SILENCE_LUFS = 100.0  # |loudness| beyond this means silence: leave the samples as they are
FPS = 25
LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block ...
LOUDNESS_OVERLAP = 0.75  # ... overlapping by 75 %
LOUDNESS_ABSOLUTE_GATE = -70.0  # LUFS


def load_audio(path: str, max_seconds: float | None = None) -> np.ndarray:
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
    """Integrated loudness in LUFS (ITU-R BS.1770-4, as pyloudnorm's `Meter.integrated_loudness` computes it for
    mono); -inf for silence or audio shorter than one 400 ms block.

    Streams the audio through pyloudnorm's K-weighting filters in chunks, so memory stays flat in audio length
    (the meter itself keeps a float64 copy of everything: ~0.2 MB per second of audio). Like upstream, it measures
    float32 samples and rounds each filter stage's output to float32. A test checks it against the meter.
    """
    import pyloudnorm  # imports scipy.signal (seconds): paid when an engine loads, not when the process starts
    from scipy.signal import lfilter, lfilter_zi

    block = int(round(LOUDNESS_BLOCK_SECONDS * sample_rate))  # 6400 samples at 16 kHz
    hop = int(round(block * (1 - LOUDNESS_OVERLAP)))  # 1600: blocks start every 100 ms
    n_blocks = (
        int(
            np.round(
                (samples.size / sample_rate - LOUDNESS_BLOCK_SECONDS)
                / (LOUDNESS_BLOCK_SECONDS * (1 - LOUDNESS_OVERLAP))
            )
        )
        + 1
    )
    if samples.size < block or n_blocks < 1:
        return -math.inf

    # 1. K-weighting (a high shelf, then a high pass), chunk by chunk with the filters' state carried over;
    #    the energy of every 100 ms hop of the weighted signal.
    stages = [
        pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
        pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass"),
    ]
    states = [np.zeros(len(lfilter_zi(stage.b, stage.a))) for stage in stages]
    hop_energy = np.zeros(-(-samples.size // hop))  # (n_hops,) sums of squares
    chunk = hop * 100  # 10 s at 16 kHz
    for start in range(0, samples.size, chunk):
        weighted = samples[start : start + chunk].astype(np.float32)
        for i, stage in enumerate(stages):
            filtered, states[i] = lfilter(stage.b, stage.a, weighted, zi=states[i])
            weighted = (stage.passband_gain * filtered).astype(np.float32)
        squares = np.square(weighted, dtype=np.float64)
        padded = np.zeros(-(-squares.size // hop) * hop)
        padded[: squares.size] = squares
        hop_energy[start // hop : start // hop + padded.size // hop] = padded.reshape(-1, hop).sum(axis=1)

    # 2. Mean square of each 400 ms block (four hops; past the end counts as silence, as in pyloudnorm).
    hops_per_block = block // hop
    padded_hops = np.concatenate([hop_energy, np.zeros(n_blocks + hops_per_block)])
    energy = sum(padded_hops[k : k + n_blocks] for k in range(hops_per_block)) / block  # (n_blocks,)

    # 3. Gating: drop blocks below -70 LUFS, then blocks more than 10 LU below the loudness of the rest.
    with np.errstate(divide="ignore"):
        block_loudness = -0.691 + 10 * np.log10(energy)
        above_absolute = block_loudness >= LOUDNESS_ABSOLUTE_GATE
        if not above_absolute.any():
            return -math.inf
        relative_gate = -0.691 + 10 * np.log10(energy[above_absolute].mean()) - 10
        gated = (block_loudness > relative_gate) & (block_loudness > LOUDNESS_ABSOLUTE_GATE)
        if not gated.any():
            return -math.inf
        return float(-0.691 + 10 * np.log10(energy[gated].mean()))


def normalize_loudness(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, target_lufs: float = TARGET_LUFS
) -> np.ndarray:
    """Scale to `target_lufs` (a new float32 array), unless the audio is silent."""
    loudness = measure_loudness(samples, sample_rate)
    if not math.isfinite(loudness) or abs(loudness) > SILENCE_LUFS:
        return samples.astype(np.float32, copy=True)
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    return np.multiply(samples, gain, dtype=np.float32)


def count_video_frames(n_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """`int(seconds * fps)`: the number of video frames the model makes for this much audio."""
    return int(n_samples / sample_rate * fps)


def load_speech(path: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode + loudness-normalise; returns (samples, n_video_frames). Audio shorter than one frame is bad_audio."""
    samples = normalize_loudness(load_audio(path, max_seconds))
    n_frames = count_video_frames(samples.size)
    if n_frames < 1:
        raise EngineError(
            "bad_audio", f"audio is {samples.size / SAMPLE_RATE:.3f} s long, shorter than one video frame"
        )
    return samples, n_frames
