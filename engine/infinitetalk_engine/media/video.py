"""Write the result MP4 clip by clip: H.264 (yuv420p) + AAC at 25 fps, with memory flat in video length.

    with Mp4Writer(job.output_path, width, height, audio=samples, max_frames=n_frames) as writer:
        for clip in clips:
            writer.write(clip_frames)          # (N, H, W, 3) uint8 RGB, any N
    # success: `output_path + ".part"` was renamed to `output_path`; on an exception the part file is removed.

Audio is encoded alongside the video (up to the time of the frames written so far), so the muxer never queues a
whole stream, and it is trimmed to the video's length: frames * sample_rate / fps samples.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction

import av
import cv2
import numpy as np

FPS = 25
DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"
AUDIO_BIT_RATE = 64_000
# cv2's RGB->I420 is BT.601 limited range; say so in the stream so players convert back with the same matrix.
BT601_TAGS = "colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m"


def part_path_for(output_path: str) -> str:
    """Where a result is written until it is complete (docs/engine-protocol.md, `job`)."""
    return output_path + ".part"


def remove_partial_output(output_path: str) -> None:
    """Delete the unfinished `.part` file of `output_path`, if any."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(part_path_for(output_path))


class Mp4Writer:
    """An MP4 being written: feed RGB frame batches with `write`, finish with `close` (or leave the `with`)."""

    def __init__(
        self,
        output_path: str,
        width: int,
        height: int,
        *,
        audio: np.ndarray | None = None,
        audio_rate: int = 16_000,
        fps: int = FPS,
        max_frames: int | None = None,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        threads: int = 0,
    ):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.output_path = output_path
        self.part_path = part_path_for(output_path)
        self.width, self.height, self.fps = width, height, fps
        self.max_frames = max_frames
        self.frames_written = 0
        self._audio = audio  # (n,) float; clipped to [-1, 1] frame by frame as it is encoded
        self._audio_rate = audio_rate
        self._audio_written = 0
        self._closed = False

        self._container = av.open(self.part_path, "w", format="mp4", options={"movflags": "+faststart"})
        try:
            self._video = self._container.add_stream("libx264", rate=fps)
            self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
            self._video.codec_context.time_base = Fraction(1, fps)
            self._video.options = {
                "crf": str(crf),
                "preset": preset,
                "threads": str(threads),
                "x264-params": BT601_TAGS,
            }
            # One YUV buffer and one encoder frame, reused for every video frame.
            self._yuv = np.empty((height * 3 // 2, width), np.uint8)
            self._frame = av.VideoFrame(width, height, "yuv420p")
            self._plane_views = [
                np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size) for plane in self._frame.planes
            ]  # (rows, line_size) incl. any padding
            self._sound = None
            if self._audio is not None:
                self._sound = self._container.add_stream("aac", rate=audio_rate, layout="mono")
                self._sound.bit_rate = AUDIO_BIT_RATE
                self._sound.codec_context.time_base = Fraction(1, audio_rate)
        except BaseException:
            self.abort()
            raise

    # MARK: - writing

    def write(self, frames: np.ndarray) -> int:
        """Encode (N, H, W, 3) or (H, W, 3) uint8 RGB frames; frames past `max_frames` are dropped. Returns N kept."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"expected (N, {self.height}, {self.width}, 3) uint8 frames, got {frames.shape} {frames.dtype}"
            )
        if self.max_frames is not None:
            frames = frames[: max(0, self.max_frames - self.frames_written)]
        for rgb in frames:
            cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420, dst=self._yuv)  # (H * 3/2, W): Y, then U, then V
            self._copy_yuv_into_frame()
            self._frame.pts = self.frames_written
            self._container.mux(self._video.encode(self._frame))
            self.frames_written += 1
        self._write_audio_until(self._audio_samples_for(self.frames_written), final=False)
        return len(frames)

    def close(self) -> str:
        """Flush the encoders, finish the file and rename it to `output_path`. Returns `output_path`."""
        if self._closed:
            return self.output_path
        if self.frames_written == 0:
            self.abort()
            raise ValueError("no frames were written")
        try:
            self._container.mux(self._video.encode(None))
            self._write_audio_until(self._audio_samples_for(self.frames_written), final=True)
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        os.replace(self.part_path, self.output_path)
        return self.output_path

    def abort(self) -> None:
        """Stop writing and delete the part file."""
        self._closed = True
        with contextlib.suppress(Exception):  # the file is being thrown away; a second error here adds nothing
            self._container.close()
        remove_partial_output(self.output_path)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _copy_yuv_into_frame(self) -> None:
        """Fill the reused encoder frame from `_yuv`. Reuse is safe: libavcodec has finished with the frame when
        `encode` returns (libx264 copies its input), and it saves allocating a frame per video frame."""
        rows = (self.height, self.height // 2, self.height // 2)
        widths = (self.width, self.width // 2, self.width // 2)
        offset = 0
        for height, width, target in zip(rows, widths, self._plane_views, strict=True):
            size = height * width
            target[:, :width] = self._yuv.reshape(-1)[offset : offset + size].reshape(height, width)
            offset += size

    # MARK: - audio

    def _audio_samples_for(self, frames: int) -> int:
        return frames * self._audio_rate // self.fps

    def _write_audio_until(self, end: int, final: bool) -> None:
        """Encode audio samples up to `end` in whole encoder frames (plus the remainder and a flush when final)."""
        if self._sound is None:
            return
        end = min(end, self._audio.size)
        frame_size = self._sound.codec_context.frame_size or 1024
        while self._audio_written < end:
            count = min(frame_size, end - self._audio_written)
            if count < frame_size and not final:
                break  # only the last frame of a stream may be short
            chunk = np.clip(self._audio[self._audio_written : self._audio_written + count], -1.0, 1.0)
            frame = av.AudioFrame.from_ndarray(
                chunk.astype(np.float32)[None, :], format="fltp", layout="mono"
            )  # (channels, n)
            frame.sample_rate = self._audio_rate
            frame.pts = self._audio_written
            frame.time_base = Fraction(1, self._audio_rate)
            self._container.mux(self._sound.encode(frame))
            self._audio_written += count
        if final:
            self._container.mux(self._sound.encode(None))
