"""Decode any speech file to 16 kHz mono float32 and normalise its loudness, as InfiniteTalk expects.

Conventions (../shared/reference/infinitetalk-engine.md §3, parity README §3): 16 kHz mono; loudness normalised to
-23 LUFS (ITU-R BS.1770, pyloudnorm) unless the measured loudness is beyond +/-100 LUFS (silence), in which case the
samples are returned unchanged; the video has `int(seconds * 25)` frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
    chunks = list(decode_chunks(path, max_seconds))
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise EngineError("bad_audio", "the audio stream has no samples")
    return samples


def decode_chunks(path: str, max_seconds: float | None = None) -> Iterator[np.ndarray]:
    """The decoded 16 kHz mono float32 samples of `path`, chunk by chunk as the decoder gives them (checked: finite,
    within `max_seconds`)."""
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
        total = 0

        def checked(out) -> np.ndarray:
            nonlocal total
            chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)  # (1, n) packed mono -> (n,)
            if not np.isfinite(chunk).all():
                raise EngineError("bad_audio", "the audio contains NaN or infinite samples")
            total += chunk.size
            if max_samples is not None and total > max_samples:
                raise EngineError("bad_audio", f"audio is longer than the limit of {max_seconds:g} s")
            return chunk

        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield checked(out)
            for out in resampler.resample(None):
                yield checked(out)
        except (av.FFmpegError, ValueError) as exc:
            raise EngineError("bad_audio", f"audio could not be decoded: {exc}") from exc


def measure_loudness(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness of `samples` (see `measure_loudness_of_chunks`)."""
    step = int(round(LOUDNESS_BLOCK_SECONDS * sample_rate * (1 - LOUDNESS_OVERLAP))) * 100
    return measure_loudness_of_chunks(
        (samples[start : start + step] for start in range(0, samples.size, step)), samples.size, sample_rate
    )


def measure_loudness_of_chunks(chunks: Iterable[np.ndarray], size: int, sample_rate: int = SAMPLE_RATE) -> float:
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
        int(np.round((size / sample_rate - LOUDNESS_BLOCK_SECONDS) / (LOUDNESS_BLOCK_SECONDS * (1 - LOUDNESS_OVERLAP))))
        + 1
    )
    if size < block or n_blocks < 1:
        return -math.inf

    # 1. K-weighting (a high shelf, then a high pass), chunk by chunk with the filters' state carried over;
    #    the energy of every 100 ms hop of the weighted signal.
    stages = [
        pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
        pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass"),
    ]
    states = [np.zeros(len(lfilter_zi(stage.b, stage.a))) for stage in stages]
    hop_energy = np.zeros(-(-size // hop))  # (n_hops,) sums of squares
    start = 0
    for chunk in _regrouped(chunks, hop * 100):  # 10 s at 16 kHz; every chunk but the last a whole number of hops
        weighted = chunk.astype(np.float32)
        for i, stage in enumerate(stages):
            filtered, states[i] = lfilter(stage.b, stage.a, weighted, zi=states[i])
            weighted = (stage.passband_gain * filtered).astype(np.float32)
        squares = np.square(weighted, dtype=np.float64)
        padded = np.zeros(-(-squares.size // hop) * hop)
        padded[: squares.size] = squares
        hop_energy[start // hop : start // hop + padded.size // hop] = padded.reshape(-1, hop).sum(axis=1)
        start += chunk.size

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


def _regrouped(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """`chunks` re-cut into pieces of exactly `size` samples (the last one shorter)."""
    pending: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += chunk.size
        while held >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, held = [joined[size:]], held - size
    if held:
        yield np.concatenate(pending)


def normalize_loudness(
    samples: np.ndarray, sample_rate: int = SAMPLE_RATE, target_lufs: float = TARGET_LUFS
) -> np.ndarray:
    """Scale to `target_lufs` (a new float32 array), unless the audio is silent."""
    gain = loudness_gain(measure_loudness(samples, sample_rate), target_lufs)
    if gain is None:
        return samples.astype(np.float32, copy=True)
    return np.multiply(samples, gain, dtype=np.float32)


def loudness_gain(loudness: float, target_lufs: float = TARGET_LUFS) -> float | None:
    """The factor that brings audio measured at `loudness` to `target_lufs`; `None` for silence (left as it is)."""
    if not math.isfinite(loudness) or abs(loudness) > SILENCE_LUFS:
        return None
    return 10.0 ** ((target_lufs - loudness) / 20.0)


def count_video_frames(n_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """`int(seconds * fps)`: the number of video frames the model makes for this much audio."""
    return int(n_samples / sample_rate * fps)


def load_speech(path: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode + loudness-normalise; returns (samples, n_video_frames). Audio shorter than one frame is bad_audio."""
    samples = normalize_loudness(load_audio(path, max_seconds))
    return samples, video_frames_of_speech(samples.size)


def video_frames_of_speech(n_samples: int) -> int:
    """`count_video_frames`, refusing audio shorter than one video frame (bad_audio)."""
    n_frames = count_video_frames(n_samples)
    if n_frames < 1:
        raise EngineError("bad_audio", f"audio is {n_samples / SAMPLE_RATE:.3f} s long, shorter than one video frame")
    return n_frames


@dataclass(frozen=True)
class SpeechTrack:
    """Decoded speech kept on disk (raw float32 samples) and read in pieces, loudness gain applied on read: a job's
    host memory does not grow with the audio's length. Slicing (`track[a:b]`) and `size` make it usable wherever
    the samples array was (the MP4 writer)."""

    path: Path
    stored: int  # samples in the file
    gain: float = 1.0  # multiplies every sample read (loudness normalisation)
    padded_to: int = 0  # zeros after the stored samples up to this length (two speakers: to the longer track)

    @property
    def size(self) -> int:
        return max(self.stored, self.padded_to)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(self.size, stop)
        samples = np.zeros(max(0, stop - start), np.float32)
        if start < self.stored and stop > start:
            with open(self.path, "rb") as f:
                f.seek(start * 4)
                stored = np.fromfile(f, dtype="<f4", count=min(stop, self.stored) - start)
            samples[: stored.size] = stored if self.gain == 1.0 else np.multiply(stored, self.gain, dtype=np.float32)
        return samples

    def chunks(self, size: int = SAMPLE_RATE * 10) -> Iterator[np.ndarray]:
        for start in range(0, self.size, size):
            yield self.read(start, start + size)

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a SpeechTrack is read by contiguous slices")
        start, stop, _ = index.indices(self.size)
        return self.read(start, stop)

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class MixedTracks:
    """Several speakers' tracks summed sample by sample (zero past each one's end), clipped to [-1, 1]: the two
    speakers' soundtrack, read in pieces like a `SpeechTrack`."""

    tracks: tuple[SpeechTrack, ...]

    @property
    def size(self) -> int:
        return max(track.size for track in self.tracks)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(self.size)
        mix = np.zeros(max(0, stop - start), np.float32)
        for track in self.tracks:
            piece = track[start:stop]
            mix[: piece.size] += piece
        return np.clip(mix, -1.0, 1.0)

    def __len__(self) -> int:
        return self.size


def open_speech(path: str, raw: str | Path, max_seconds: float | None = None) -> tuple[SpeechTrack, int]:
    """`load_speech` without holding the samples: decoded into the file `raw` chunk by chunk, loudness measured in a
    second pass over it. Returns (track, n_video_frames)."""
    raw = Path(raw)
    size = 0
    with open(raw, "wb") as out:
        for chunk in decode_chunks(path, max_seconds):
            chunk.astype("<f4", copy=False).tofile(out)
            size += chunk.size
    if size == 0:
        raw.unlink(missing_ok=True)
        raise EngineError("bad_audio", "the audio stream has no samples")
    gain = loudness_gain(measure_loudness_of_chunks(SpeechTrack(raw, size).chunks(), size))
    return SpeechTrack(raw, size, 1.0 if gain is None else gain), video_frames_of_speech(size)
