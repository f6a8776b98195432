"""The preview engine: animates the uploaded face from the audio on CPU. Not the model.

It exists so the product installs and runs end to end everywhere (laptops, CI, machines without a GPU): the
person in the image "talks" in time with the audio (jaw follows speech energy, natural blinks, a small head sway),
behind the same protocol and media pipeline as the InfiniteTalk engine. See docs/preview-engine.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import __version__
from ..contract import Engine, EngineOptions, JobContext, JobRequest, JobResult
from ..media.audio import SAMPLE_RATE, load_speech, measure_loudness
from ..media.image import BUCKETS, file_digest, fit_to_bucket, load_image
from ..media.live_stream import live_stream_folder
from ..media.video import FPS, Mp4Writer
from ..parameters import parameter_capabilities, standard_parameters
from ..recent_cache import RecentCache
from .animator import FaceAnimator
from .face_detection import centre_layout, find_face_layout
from .motion import plan_motion

DEFAULT_MAX_JOBS = 2
DEFAULT_SEED = 42
CLIP_FRAMES = 100  # frames per reported clip (4 s); the preview has no model clips, this paces the UI
BATCH_FRAMES = 25  # frames between cancel checks and progress reports (1 s of video)
DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"  # as fast as superfast/ultrafast here (the frame is mostly static) and 3-6x smaller
NO_FACE_WARNING = "no face found; animated the image centre"
PORTRAIT_CACHE_SIZE = 4


class PreviewEngine(Engine):
    """Face-warp animation on CPU; `capabilities()["is_preview"]` is true."""

    name = "preview"
    version = __version__

    def __init__(self, options: EngineOptions):
        self.options = options
        self.max_jobs = options.max_jobs or DEFAULT_MAX_JOBS
        self._portraits: RecentCache[tuple[np.ndarray, Any, bool]] = RecentCache(PORTRAIT_CACHE_SIZE)

    def capabilities(self) -> dict[str, Any]:
        # The preview has no sampler and ignores `steps`; it reports the real model's LoRA default (4) so the
        # service and the page show the same default whichever engine runs.
        parameters = standard_parameters(resolutions=tuple(BUCKETS), default_steps=4, max_steps=50, two_speakers=False)
        return {
            **parameter_capabilities(parameters),
            "fps": FPS,
            "max_concurrent_jobs": self.max_jobs,
            "device": "cpu",
            "is_preview": True,
        }

    def _portrait(self, image_path: str, resolution: str) -> tuple[np.ndarray, Any, bool]:
        """The bucket-fitted picture, its face layout and whether a face was found, kept for the last
        `PORTRAIT_CACHE_SIZE` pictures (by their bytes): jobs that share a portrait (a batch) analyse it once."""

        def analyse() -> tuple[np.ndarray, Any, bool]:
            pixels, _ = fit_to_bucket(load_image(image_path, self.options.max_image_pixels), resolution)
            face = find_face_layout(pixels)
            pixels.setflags(write=False)  # shared between jobs: nothing may change it
            return pixels, face if face is not None else centre_layout(pixels), face is not None

        return self._portraits.get_or_make((file_digest(image_path), resolution), analyse)

    def load(self) -> None:
        # No model: warm what the first job would otherwise wait for (the loudness meter, OpenCV's cascades).
        measure_loudness(np.zeros(SAMPLE_RATE, np.float32))
        find_face_layout(np.full((64, 64, 3), 128, np.uint8))

    def run(self, job: JobRequest, ctx: JobContext) -> JobResult:
        seed = DEFAULT_SEED if job.params.seed is None else job.params.seed
        warnings: list[str] = []

        # 1. Audio: 16 kHz mono, -23 LUFS; the video gets int(seconds * 25) frames.
        ctx.stage("decoding_audio", "Decoding audio")
        samples, n_frames = load_speech(job.audio_path, self.options.max_audio_seconds)
        ctx.check_cancelled()

        # 2. Audio features: the motion of every frame (mouth from speech energy, blinks, sway).
        ctx.stage("audio_features", "Measuring speech energy")
        motion = plan_motion(samples, n_frames, seed)
        ctx.progress(0.02)
        ctx.check_cancelled()

        # 3. Image: fit to the resolution bucket, find the face (once per portrait: a batch's jobs share it).
        ctx.stage("encoding_image", "Finding the face")
        pixels, face, found = self._portrait(job.image_path, job.params.resolution)
        if not found:
            warnings.append(NO_FACE_WARNING)
        animator = FaceAnimator(pixels, face)
        height, width = pixels.shape[:2]
        ctx.progress(0.04)
        ctx.check_cancelled()

        # 4. Generate and encode clip by clip: memory stays flat however long the audio is.
        clips = math.ceil(n_frames / CLIP_FRAMES)
        frame = pixels.copy()  # (H, W, 3): one buffer; each frame rewrites only the head region
        with Mp4Writer(
            job.output_path,
            width,
            height,
            audio=samples,
            max_frames=n_frames,
            crf=self.options.video_crf or DEFAULT_CRF,
            preset=self.options.video_preset or DEFAULT_PRESET,
            live=live_stream_folder(job, ctx),
        ) as writer:
            for clip in range(clips):
                first, last = clip * CLIP_FRAMES, min((clip + 1) * CLIP_FRAMES, n_frames)
                ctx.stage("generating", f"Animating clip {clip + 1} of {clips}", clip=clip + 1, clips=clips)
                for batch in range(first, last, BATCH_FRAMES):
                    ctx.check_cancelled()
                    for i in range(batch, min(batch + BATCH_FRAMES, last)):
                        animator.render(
                            motion.mouth[i],
                            motion.blink[i],
                            motion.shift_x[i],
                            motion.shift_y[i],
                            motion.angle[i],
                            out=frame,
                        )
                        writer.write(frame)  # encoded at once, so the buffer can be reused for the next frame
                    done = min(batch + BATCH_FRAMES, last)
                    ctx.progress(
                        0.04 + 0.94 * done / n_frames, step=done - first, steps=last - first, clip=clip + 1, clips=clips
                    )
                writer.end_clip()  # its live segment
            ctx.check_cancelled()
            ctx.stage("encoding_video", "Finishing the MP4")
        ctx.progress(1.0)

        return JobResult.of_video(job.output_path, writer.frames_written, FPS, width, height, warnings)
