"""The preview's motion, one value per video frame: mouth opening from speech energy, blinks, and head sway.

Everything here is a small array per frame (a 10-minute video is 15,000 frames), computed once per job, and
deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FPS = 25
SILENCE_DB = -50.0  # frame RMS (dBFS) at or below which the mouth is closed (speech is at -23 LUFS here)
MIN_SPEECH_RANGE_DB = 12.0  # the loud end of the scale is at least this far above SILENCE_DB
OPEN_ATTACK = 0.65  # per-frame smoothing towards a wider mouth: opening is quick ...
OPEN_RELEASE = 0.35  # ... and closing a little slower, like a real jaw
BLINK_SHAPE = np.array([0.55, 1.0, 0.85, 0.5, 0.2])  # lid closure over 5 frames (200 ms): fast close, slow open
BLINK_INTERVAL_S = (2.0, 6.0)
DOUBLE_BLINK_CHANCE = 0.15


@dataclass(frozen=True)
class Motion:
    """Per-frame animation controls, each an array of shape (n_frames,)."""

    mouth: np.ndarray  # 0 closed .. 1 wide open
    blink: np.ndarray  # 0 open eyes .. 1 closed
    shift_x: np.ndarray  # head translation, in face widths
    shift_y: np.ndarray
    angle: np.ndarray  # head roll, radians (about the neck)

    def __len__(self) -> int:
        return len(self.mouth)


def plan_motion(samples: np.ndarray, n_frames: int, seed: int, sample_rate: int = 16_000) -> Motion:
    """All of a job's motion from its (loudness-normalised) audio and seed."""
    rng = np.random.default_rng(seed)
    mouth = mouth_opening(samples, n_frames, sample_rate)
    shift_x, shift_y, angle = head_sway(n_frames, rng, mouth)
    return Motion(mouth, blinks(n_frames, rng), shift_x, shift_y, angle)


def frame_energy_db(samples: np.ndarray, n_frames: int, sample_rate: int = 16_000) -> np.ndarray:
    """RMS level in dBFS of the audio under each video frame, shape (n_frames,)."""
    per_frame = sample_rate // FPS
    whole = min(n_frames, samples.size // per_frame)
    frames = samples[: whole * per_frame].reshape(whole, per_frame)  # (whole, 640), a view
    mean_square = np.zeros(n_frames, np.float64)
    mean_square[:whole] = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / per_frame  # no squared copy
    if whole < n_frames:  # a last, partial frame
        tail = samples[whole * per_frame : (whole + 1) * per_frame].astype(np.float64)
        mean_square[whole] = np.square(tail).sum() / per_frame
    return (10.0 * np.log10(mean_square + 1e-12)).astype(np.float32)


def mouth_opening(samples: np.ndarray, n_frames: int, sample_rate: int = 16_000) -> np.ndarray:
    """Mouth opening in [0, 1] per frame: speech level mapped between silence and the loud end, then smoothed."""
    level = frame_energy_db(samples, n_frames, sample_rate)
    loud = max(float(np.percentile(level, 95)), SILENCE_DB + MIN_SPEECH_RANGE_DB)
    target = np.clip((level - SILENCE_DB) / (loud - SILENCE_DB), 0.0, 1.0) ** 1.5  # soft sounds barely part lips
    opening = np.empty(n_frames, np.float32)
    current = 0.0
    for i, wanted in enumerate(target):
        rate = OPEN_ATTACK if wanted > current else OPEN_RELEASE
        current += rate * (wanted - current)
        opening[i] = current
    return opening


def blinks(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure in [0, 1] per frame: a blink every 2-6 s, now and then a double blink."""
    closure = np.zeros(n_frames, np.float32)
    frame = int(rng.uniform(0.5, 2.5) * FPS)
    while frame < n_frames:
        starts = [frame]
        if rng.random() < DOUBLE_BLINK_CHANCE:
            starts.append(frame + len(BLINK_SHAPE) + 1)
        for start in starts:
            span = closure[start : start + len(BLINK_SHAPE)]
            np.maximum(span, BLINK_SHAPE[: len(span)], out=span)
        frame += int(rng.uniform(*BLINK_INTERVAL_S) * FPS)
    return closure


def head_sway(
    n_frames: int,
    rng: np.random.Generator,
    mouth: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow drift of the head (sums of unrelated sines) plus a slight nod while speaking."""
    t = np.arange(n_frames, dtype=np.float64) / FPS

    def drift(amplitude: float) -> np.ndarray:
        periods = rng.uniform(3.0, 9.0, size=3)
        phases = rng.uniform(0, 2 * np.pi, size=3)
        weights = np.array([1.0, 0.5, 0.25])
        wave = sum(w * np.sin(2 * np.pi * t / p + ph) for w, p, ph in zip(weights, periods, phases, strict=True))
        return (amplitude * wave / weights.sum()).astype(np.float32)

    # A nod follows the speech envelope, slowed down so it reads as emphasis rather than jitter.
    nod = np.convolve(mouth, np.ones(9) / 9, mode="same").astype(np.float32)
    shift_x = drift(0.012)
    shift_y = drift(0.008) + 0.012 * nod
    angle = drift(np.deg2rad(1.5))
    return shift_x, shift_y, angle
