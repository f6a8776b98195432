"""Which audio frames each clip sees, and how the clip loop walks along the audio.

A clip has `frame_num` (81) video frames; video frame i of a clip starting at `start` reads the audio frames
`start + i + (-2..+2)`, clamped to the available frames -> (81, 5, layers, width). Clip k>0 starts at
`k * (frame_num - motion_frames)` (72k): its first `motion_frames` (9) frames re-create the previous clip's last ones
and are dropped from the output. The clip whose end reaches the audio length (or `max_frames`) is the last; if it
runs past the audio, the embedding is extended by `end - n + 3` frames of its own tail in reverse order, and the
final video is trimmed back to the audio length.
Reference: ../shared/reference/infinitetalk-engine.md §3-4, ../shared/parity/README.md §2 "Audio windows per clip".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

WINDOW_RADIUS = 2  # offsets -2..+2 around each video frame
FRAME_NUM = 81  # video frames per clip (21 latent frames)
MOTION_FRAMES = 9  # frames carried over from the previous clip (3 latent frames)
MAX_FRAMES = 1000  # upstream streaming default (40 s at 25 fps)
TAIL_MARGIN = 3  # upstream extends the tail 3 frames beyond the last clip's end


def window_indices(start: int, frame_num: int, available: int, radius: int = WINDOW_RADIUS) -> torch.Tensor:
    """(frame_num, 2*radius+1) int64 audio frame indices for a clip starting at `start`, clamped to
    [0, available-1]."""
    centres = torch.arange(start, start + frame_num)[:, None]
    offsets = torch.arange(-radius, radius + 1)[None, :]
    return (centres + offsets).clamp(0, available - 1)


def clip_windows(embedding: torch.Tensor, start: int, frame_num: int = FRAME_NUM) -> torch.Tensor:
    """(n, layers, width) per-frame features -> (frame_num, 5, layers, width) windows of one clip."""
    return embedding[window_indices(start, frame_num, embedding.shape[0])]


def extend_reverse_tail(embedding, end: int):
    """Extend (n, ...) features past their end for a clip ending at `end` (exclusive): append the last
    `end - n + 3` frames in reverse order (or return them unchanged if `end < n`). With fewer frames than that
    the whole sequence is appended reversed and clamping covers the rest. Features computed on demand
    (`models.audio_features.StreamedFeatures`) get the same frames by index instead of a copy."""
    n = embedding.shape[0]
    if end < n:
        return embedding
    missing = end - n + TAIL_MARGIN
    if not isinstance(embedding, torch.Tensor):
        return MirroredTail(embedding, min(missing, n))
    return torch.cat([embedding, torch.flip(embedding[-missing:], dims=[0])], dim=0)


class MirroredTail:
    """Indexable features (n, ...) followed by their last `extra` frames in reverse order: frame n + j reads frame
    n - 1 - j."""

    def __init__(self, base, extra: int):
        self.base = base
        self.shape = torch.Size((base.shape[0] + extra, *base.shape[1:]))

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        n = self.base.shape[0]
        index = torch.as_tensor(index)
        return self.base[torch.where(index < n, index, 2 * n - 1 - index)]


@dataclass(frozen=True)
class ClipPlan:
    index: int
    start: int  # audio/video frame index of the clip's first frame
    drop: int  # leading frames of this clip's decoded video that are not output (motion frames)


@dataclass(frozen=True)
class StreamPlan:
    """The whole loop, decided up front from the audio length."""

    clips: tuple[ClipPlan, ...]
    frame_num: int
    audio_frames: int  # n: frames of real audio (video frames at 25 fps)
    last_end: int  # end (exclusive) of the last clip: extend the embeddings with `extend_reverse_tail`
    output_frames: int  # frames of the final video

    @property
    def generated_frames(self) -> int:
        return sum(self.frame_num - clip.drop for clip in self.clips)


def plan_stream(
    audio_frames: int, frame_num: int = FRAME_NUM, motion_frames: int = MOTION_FRAMES, max_frames: int = MAX_FRAMES
) -> StreamPlan:
    """Clip starts and output length for `audio_frames` frames of audio, as upstream's streaming loop decides them.

    Upstream requires more than `frame_num` audio frames; shorter audio here gets one clip whose windows read the
    reverse-extended tail, and the output is trimmed to the audio length. `max_frames <= frame_num` is upstream's
    single-clip mode."""
    if audio_frames < 1:
        raise ValueError("audio is shorter than one video frame")
    if not 0 < motion_frames < frame_num or (motion_frames - 1) % 4 or (frame_num - 1) % 4:
        raise ValueError(f"need frame_num = 1+4k > motion_frames = 1+4j > 0, got {frame_num}, {motion_frames}")
    stride = frame_num - motion_frames
    clips = [ClipPlan(0, 0, 0)]
    start = 0
    reached_end = frame_num >= min(max_frames, audio_frames)  # only possible for short audio or single-clip mode
    while not reached_end and max_frames > frame_num:
        start += stride
        reached_end = start + frame_num >= min(max_frames, audio_frames)
        clips.append(ClipPlan(len(clips), start, motion_frames))
    last_end = clips[-1].start + frame_num
    generated = frame_num + (len(clips) - 1) * stride
    output = min(generated, max_frames)
    if last_end >= audio_frames:
        output = min(output, audio_frames)  # the extended tail is generated but not output
    return StreamPlan(tuple(clips), frame_num, audio_frames, last_end, output)
