"""The interface every engine implements, and the job types the worker hands to it.

The worker (`worker.py`) owns the protocol: it parses `job` messages into `JobRequest`, calls `Engine.run` with a
`JobContext`, and turns the result or exception into exactly one `done` or `error` event. Engines never touch
stdout; they report through the context.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .media.live_stream import LiveSegment


class JobCancelled(Exception):
    """Raised by `JobContext.check_cancelled()` once the service cancelled the job."""


class EngineError(Exception):
    """A failure with a stable protocol code (`bad_image`, `bad_audio`, `out_of_memory`, ...)."""

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass
class EngineOptions:
    """Command-line options every engine receives (`python -m infinitetalk_engine --help`); `None` = engine default."""

    weights: str | None = None  # --weights: the seed's weights/ folder (infinitetalk)
    device: str | None = None  # --device: "cuda", "cuda:1", "cpu"
    max_jobs: int | None = None  # --max-jobs: the engine's max_concurrent_jobs (>= 1)
    max_audio_seconds: float = 1200.0  # --max-audio-seconds: longer audio is refused with bad_audio
    max_image_pixels: int = 40_000_000  # --max-image-pixels: larger images are refused with bad_image
    video_crf: int | None = None  # --video-crf: libx264 quality (lower = better, larger files)
    video_preset: str | None = None  # --video-preset: libx264 speed preset
    extra: dict[str, str] = field(default_factory=dict)  # --engine-option KEY=VALUE, engine-specific


@dataclass
class JobParams:
    """The `params` object of a `job` message; `None` means the engine's default."""

    resolution: str = "480p"
    steps: int | None = None
    seed: int | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    shift: float | None = None
    text_guidance_scale: float | None = None
    audio_guidance_scale: float | None = None
    audio_guidance_steps: int | None = None  # audio guidance on the first N steps only (None: every step)
    lora_scale: float | None = None
    color_correction: float | None = None
    audio2_path: str | None = None
    speaker_boxes: list[list[float]] | None = None
    loras: list[dict[str, Any]] | None = None  # library LoRAs: [{"name": …, "scale": …}]


@dataclass
class JobRequest:
    job_id: str
    image_path: str
    audio_path: str
    output_path: str
    params: JobParams = field(default_factory=JobParams)
    segments_dir: str | None = None  # where to write the live stream (init.mp4, clip-NNNNN.m4s), if asked


@dataclass
class JobResult:
    """What `done` reports. `output_path` is the final (renamed) file."""

    output_path: str
    frames: int
    duration_seconds: float
    fps: int
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of_video(
        cls, output_path: str, frames: int, fps: int, width: int, height: int, warnings: list[str] | None = None
    ) -> JobResult:
        """The result of a video of `frames` frames at `fps` (its duration follows)."""
        return cls(output_path, frames, frames / fps, fps, width, height, list(warnings or []))


class JobContext(abc.ABC):
    """Given to `Engine.run`: the only way an engine reports progress or learns of a cancel."""

    @abc.abstractmethod
    def stage(self, stage: str, message: str, clip: int | None = None, clips: int | None = None) -> None:
        """Announce a stage: decoding_audio, audio_features, encoding_image, encoding_text, generating or
        encoding_video."""

    @abc.abstractmethod
    def progress(
        self,
        fraction: float,
        step: int | None = None,
        steps: int | None = None,
        clip: int | None = None,
        clips: int | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        """Report overall progress in [0, 1] (the context keeps it monotonic and rate-limits it)."""

    @abc.abstractmethod
    def segment_ready(self, segment: LiveSegment) -> None:
        """A clip's live segment is complete in the job's `segments_dir`."""

    @abc.abstractmethod
    def check_cancelled(self) -> None:
        """Raise `JobCancelled` if the job was cancelled. Call it between steps, frame batches and clips."""


class Engine(abc.ABC):
    """A loaded model (or the preview animator) that turns one job into one MP4."""

    name: str
    version: str

    @abc.abstractmethod
    def capabilities(self) -> dict[str, Any]:
        """The `capabilities` object of `hello` (resolutions, fps, max_concurrent_jobs, device, is_preview, ...)."""

    @abc.abstractmethod
    def load(self) -> None:
        """Load models once; called before `ready`. Raise `EngineError("load_failed", ...)` naming the bad file."""

    @abc.abstractmethod
    def run(self, job: JobRequest, ctx: JobContext) -> JobResult:
        """Generate the video for `job`, writing `job.output_path + '.part'` then renaming it to `output_path`.

        Raise `EngineError` for failures with a code, `JobCancelled` (via `ctx.check_cancelled()`) on cancel.
        """

    def add_lora(self, name: str, source: str) -> dict[str, Any]:
        """Check the LoRA file `source` against the loaded model and copy it into the library as `name`; returns its
        listing (as `capabilities()["loras"]` lists it). Raise `EngineError` (`invalid_lora`, `lora_exists`, ...)
        when nothing was added. Engines without a LoRA library refuse with `lora_unsupported`."""
        raise EngineError("lora_unsupported", f"the {self.name} engine does not apply LoRAs")

    def rescan_loras(self) -> None:
        """Read the LoRA library again (files added or removed by hand); `capabilities()` then lists them."""
        return None  # engines without a library have nothing to read
