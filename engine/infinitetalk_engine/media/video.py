"""Write the result MP4 clip by clip: H.264 (yuv420p) + AAC at 25 fps, with memory flat in video length.

    with Mp4Writer(job.output_path, width, height, audio=samples, max_frames=n_frames, live=folder) as writer:
        for clip in clips:
            writer.write(clip_frames)          # (N, H, W, 3) uint8 RGB, any N
            writer.end_clip()                  # the clip's live segment is written now
    # success: `output_path + ".part"` was renamed to `output_path`; on an exception the part file is removed.

Audio is encoded alongside the video (up to the time of the frames written so far), so the muxer never queues a
whole stream, and it is trimmed to the video's length: frames * sample_rate / fps samples.

The video encoder restarts at each `end_clip`: flushing it is the only way to get every packet of the clip now (the
encoder holds frames back for B-frames and look-ahead), and it makes each clip start with a key frame. With `live`,
the clip's packets (the very packets of the MP4) also become a CMAF media segment in that folder (`cmaf.py`,
`live_stream.py`).
"""

from __future__ import annotations

import contextlib
import math
import os
from fractions import Fraction

import av
import cv2
import numpy as np

from . import cmaf
from .live_stream import LiveStreamFolder

FPS = 25
DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"
AUDIO_BIT_RATE = 64_000
AAC_FRAME = 1024  # samples per AAC frame, and the encoder's priming delay
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
    """An MP4 being written: feed RGB frame batches with `write`, mark clip ends with `end_clip`, finish with `close`
    (or leave the `with`)."""

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
        live: LiveStreamFolder | None = None,
    ):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.output_path = output_path
        self.part_path = part_path_for(output_path)
        self.width, self.height, self.fps = width, height, fps
        self.max_frames = max_frames
        self.frames_written = 0
        # (n,) float, or samples read by slices with a `size` (a SpeechTrack on disk); clipped to [-1, 1] frame by
        # frame as it is encoded
        self._audio = audio
        self._audio_rate = audio_rate
        self._audio_written = 0
        self._audio_flushed = False
        self._closed = False
        self._encoder_options = {
            "crf": str(crf),
            "preset": preset,
            "threads": str(threads),
            "x264-params": BT601_TAGS,
        }
        self._encoder: av.VideoCodecContext | None = None  # the current clip's; opened by its first frame
        self._live: _LiveSegmenter | None = None

        self._container = av.open(self.part_path, "w", format="mp4", options={"movflags": "+faststart"})
        try:
            # Packets come from one encoder per clip; the muxer reads SPS/PPS from the first key frame.
            self._video = self._container.add_mux_stream("h264", rate=fps, width=width, height=height)
            self._video.time_base = Fraction(1, fps)
            # One YUV buffer and one encoder frame, reused for every video frame.
            self._yuv = np.empty((height * 3 // 2, width), np.uint8)
            self._frame = av.VideoFrame(width, height, "yuv420p")
            self._frame.time_base = Fraction(1, fps)
            self._plane_views = [
                np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size) for plane in self._frame.planes
            ]  # (rows, line_size) incl. any padding
            self._sound = None
            if self._audio is not None:
                self._sound = self._container.add_stream("aac", rate=audio_rate, layout="mono")
                self._sound.bit_rate = AUDIO_BIT_RATE
                self._sound.codec_context.time_base = Fraction(1, audio_rate)
            if live is not None:
                self._live = _LiveSegmenter(live, (width, height), fps, self._sound)
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
            self._mux_video(self._current_encoder().encode(self._frame))
            self.frames_written += 1
        self._write_audio_until(self._audio_samples_for(self.frames_written), final=False)
        return len(frames)

    def end_clip(self) -> None:
        """Mark the end of a clip: flush the video encoder (the next frame starts a new one, with a key frame) and,
        with `live`, write the clip's segment. The last clip (`max_frames` reached) takes the rest of the audio."""
        self._flush_video()
        last = self.max_frames is not None and self.frames_written >= self.max_frames
        self._write_audio_until(self._audio_samples_for(self.frames_written), final=last)
        if self._live is not None:
            self._live.cut(self.frames_written)

    def close(self) -> str:
        """Flush the encoders, finish the file and rename it to `output_path`. Returns `output_path`."""
        if self._closed:
            return self.output_path
        if self.frames_written == 0:
            self.abort()
            raise ValueError("no frames were written")
        try:
            self._flush_video()
            self._write_audio_until(self._audio_samples_for(self.frames_written), final=True)
            if self._live is not None:
                self._live.cut(self.frames_written)
                self._live.folder.end()
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

    def _current_encoder(self) -> av.VideoCodecContext:
        if self._encoder is None:
            encoder = av.CodecContext.create("libx264", "w")
            encoder.width, encoder.height, encoder.pix_fmt = self.width, self.height, "yuv420p"
            encoder.time_base = Fraction(1, self.fps)
            encoder.framerate = Fraction(self.fps)
            encoder.options = dict(self._encoder_options)
            encoder.open()
            self._encoder = encoder
        return self._encoder

    def _flush_video(self) -> None:
        if self._encoder is not None:
            self._mux_video(self._encoder.encode(None))
            self._encoder = None

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self._live is not None:
                self._live.add_video(packet)
            packet.stream = self._video
            self._container.mux(packet)

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
        if self._sound is None or self._audio_flushed:
            return
        end = min(end, self._audio.size)
        frame_size = self._sound.codec_context.frame_size or AAC_FRAME
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
            self._mux_audio(self._sound.encode(frame))
            self._audio_written += count
        if final:
            self._mux_audio(self._sound.encode(None))
            self._audio_flushed = True

    def _mux_audio(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            if self._live is not None:
                self._live.add_audio(packet)
            self._container.mux(packet)


class _LiveSegmenter:
    """Turns the packets of each clip into a CMAF media segment in a `LiveStreamFolder`.

    Both tracks are shifted by the same whole number of frames so that no decode time is negative (libx264 starts
    decoding before time 0 for B-frames, the AAC encoder starts with a priming frame): audio and video stay in step.
    """

    def __init__(self, folder: LiveStreamFolder, size: tuple[int, int], fps: int, sound: av.audio.AudioStream | None):
        self.folder = folder
        self._size, self._fps, self._sound = size, fps, sound
        self._video: list[tuple[bytes, Fraction, Fraction, bool]] = []  # (annex B data, dts, pts, key) in seconds
        self._audio: list[tuple[bytes, Fraction, Fraction]] = []  # (data, pts, duration) in seconds
        self._tracks: dict[str, cmaf.Track] | None = None
        self._shift = Fraction(0)
        self._frames_cut = 0

    def add_video(self, packet: av.Packet) -> None:
        base = packet.time_base
        self._video.append((bytes(packet), packet.dts * base, packet.pts * base, packet.is_keyframe))

    def add_audio(self, packet: av.Packet) -> None:
        base = packet.time_base
        self._audio.append((bytes(packet), packet.pts * base, (packet.duration or AAC_FRAME) * base))

    def cut(self, frames_written: int) -> None:
        """Write the segment of the packets since the last cut; nothing if no video came since."""
        if not self._video:
            return
        if self._tracks is None:
            self._start()
        fragments = [self._video_fragment()]
        if self._audio and "soun" in self._tracks:
            fragments.append(self._audio_fragment())
        frames = frames_written - self._frames_cut
        self._frames_cut = frames_written
        data = cmaf.media_segment(len(self.folder.segments) + 1, fragments)
        self.folder.write_segment(data, round(frames / self._fps, 3), round(frames_written / self._fps, 3))
        self._video, self._audio = [], []

    def _start(self) -> None:
        """At the first cut (the audio encoder is open by then): the init segment and the timeline's shift."""
        init = cmaf.init_segment(self._video[0][0], self._size, self._fps, self._sound)
        self._tracks = cmaf.tracks(init)
        if self._audio:
            audio_lead = -self._audio[0][1]
        else:  # no audio packet yet: the AAC encoder's priming delay
            audio_lead = Fraction(AAC_FRAME, self._sound.rate) if self._sound else Fraction(0)
        lead = max(Fraction(0), -self._video[0][1], audio_lead)
        self._shift = Fraction(math.ceil(lead * self._fps), self._fps)  # whole frames
        self.folder.write_init(init)

    def _video_fragment(self) -> cmaf.TrackFragment:
        track = self._tracks["vide"]
        frame = Fraction(1, self._fps)
        samples = [
            cmaf.Sample(
                cmaf.avcc_from_annexb(data),
                _ticks(dts + self._shift, track.timescale),
                _ticks(frame, track.timescale),
                _ticks(pts - dts, track.timescale),
                key,
            )
            for data, dts, pts, key in self._video
        ]
        return cmaf.TrackFragment(track.track_id, samples)

    def _audio_fragment(self) -> cmaf.TrackFragment:
        track = self._tracks["soun"]
        samples = [
            cmaf.Sample(data, _ticks(pts + self._shift, track.timescale), _ticks(duration, track.timescale))
            for data, pts, duration in self._audio
        ]
        return cmaf.TrackFragment(track.track_id, samples)


def _ticks(seconds: Fraction, timescale: int) -> int:
    return round(seconds * timescale)
