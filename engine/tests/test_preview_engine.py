"""The preview engine: finds the face, moves the mouth with the speech, blinks, sways, and nothing else moves."""

from __future__ import annotations

import math
import os
import wave

import numpy as np
import pytest
from probe import assert_standard_mp4, decode_frames

from infinitetalk_engine.contract import EngineOptions, JobContext, JobParams, JobRequest
from infinitetalk_engine.media.audio import load_speech
from infinitetalk_engine.media.image import fit_to_bucket, load_image
from infinitetalk_engine.preview.animator import FaceAnimator
from infinitetalk_engine.preview.engine import CLIP_FRAMES, PreviewEngine
from infinitetalk_engine.preview.face_detection import find_face_layout
from infinitetalk_engine.preview.motion import plan_motion

# Where the face is in ../shared/media/astronaut.png once fitted to the 640x640 bucket (looked up by eye:
# hairline to chin, ear to ear), for checking the detector, not copied from any fixture.
ASTRONAUT_FACE_640 = (225, 95, 335, 205)  # x0, y0, x1, y1


class RecordingContext(JobContext):
    def __init__(self):
        self.stages, self.fractions, self.segments = [], [], []

    def stage(self, stage, message, clip=None, clips=None):
        self.stages.append(stage)

    def progress(self, fraction, step=None, steps=None, clip=None, clips=None, eta_seconds=None):
        self.fractions.append(fraction)

    def segment_ready(self, segment):
        assert os.path.exists(os.path.join(self.segments_dir, segment.file)), "announced only once on disk"
        self.segments.append(segment)

    def check_cancelled(self):
        pass


def astronaut_pixels(face_png) -> np.ndarray:
    return fit_to_bucket(load_image(str(face_png)), "480p")[0]


def wav_energy_per_frame(path, n_frames: int) -> np.ndarray:
    """RMS of the raw file under each 40 ms video frame (independent of the engine's audio code)."""
    with wave.open(str(path)) as source:
        rate = source.getframerate()
        samples = np.frombuffer(source.readframes(source.getnframes()), "<i2").astype(np.float64)
    per_frame = rate // 25
    frames = samples[: n_frames * per_frame].reshape(n_frames, per_frame)
    return np.sqrt((frames**2).mean(axis=1))


@pytest.fixture(scope="module")
def burst_video(tmp_path_factory, face_png, burst_wav):
    """The preview of the astronaut saying tone bursts: (done result, decoded frames, still image)."""
    output = tmp_path_factory.mktemp("preview") / "bursts.mp4"
    engine = PreviewEngine(EngineOptions())
    engine.load()
    context = RecordingContext()
    context.segments_dir = str(output.parent / "live")
    job = JobRequest("j", str(face_png), str(burst_wav), str(output), JobParams(seed=3), context.segments_dir)
    result = engine.run(job, context)
    return result, context, decode_frames(output), astronaut_pixels(face_png)


def test_the_face_is_found_with_eyes_above_the_mouth(face_png):
    face = find_face_layout(astronaut_pixels(face_png))
    assert face is not None and face.detected
    x0, y0, x1, y1 = ASTRONAUT_FACE_640
    assert x0 - 20 <= face.x <= x0 + 20 and x1 - 20 <= face.x + face.width <= x1 + 20
    assert y0 - 25 <= face.y <= y0 + 25 and y1 - 25 <= face.y + face.height <= y1 + 25
    left, right = face.eyes
    assert left.x < face.centre_x < right.x
    assert face.y < left.y < face.mouth_y < face.y + 1.1 * face.height


def test_a_landscape_has_no_face(no_face_png):
    assert find_face_layout(fit_to_bucket(load_image(str(no_face_png)), "480p")[0]) is None


def test_motion_is_deterministic_for_a_seed_and_the_mouth_depends_only_on_the_audio(speech_wav):
    samples, n_frames = load_speech(str(speech_wav))
    first, again, other = (plan_motion(samples, n_frames, seed) for seed in (5, 5, 6))
    for name in ("mouth", "blink", "shift_x", "shift_y", "angle"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    np.testing.assert_array_equal(first.mouth, other.mouth)
    assert not np.array_equal(first.shift_x, other.shift_x)


def test_mouth_opens_for_speech_and_closes_in_silence(burst_wav):
    samples, n_frames = load_speech(str(burst_wav))
    mouth = plan_motion(samples, n_frames, seed=0).mouth
    loud = wav_energy_per_frame(burst_wav, n_frames) > 0
    assert mouth[loud].mean() > 0.5 and mouth[~loud].mean() < 0.25
    assert mouth.min() >= 0.0 and mouth.max() <= 1.0


def test_eyes_blink_now_and_then(speech_wav):
    samples, n_frames = load_speech(str(speech_wav))
    blinks = plan_motion(samples, 30 * 25, seed=1).blink  # 30 s: natural blinking is ~every 2-6 s
    starts = np.flatnonzero((blinks[1:] > 0.5) & (blinks[:-1] <= 0.5))
    assert 4 <= len(starts) <= 16
    assert (blinks == 0).mean() > 0.7


def test_the_output_is_the_audio_length_at_the_bucket_size(burst_video, burst_wav):
    result, context, frames, still = burst_video
    assert (result.width, result.height, result.fps) == (640, 640, 25)
    assert result.frames == 100  # 4.0 s of audio * 25
    assert_standard_mp4(result.output_path, 100, 640, 640)
    assert context.stages[0] == "decoding_audio" and context.stages[-1] == "encoding_video"
    assert context.fractions == sorted(context.fractions) and context.fractions[-1] == 1.0


def test_each_clip_of_the_video_becomes_a_live_segment(burst_video):
    result, context, _, _ = burst_video
    clips = math.ceil(result.frames / CLIP_FRAMES)
    assert [segment.index for segment in context.segments] == list(range(1, clips + 1))
    assert sum(segment.duration_seconds for segment in context.segments) == pytest.approx(result.duration_seconds)
    assert context.segments[-1].end_seconds == pytest.approx(result.duration_seconds)


def test_mouth_region_change_follows_the_audio_energy(burst_video, burst_wav):
    result, _, frames, still = burst_video
    face = find_face_layout(still)
    columns = slice(int(face.centre_x - 0.2 * face.width), int(face.centre_x + 0.2 * face.width))

    def change(top: float, bottom: float) -> np.ndarray:
        """Mean |frame - still| per frame in rows mouth_y + [top, bottom) face heights."""
        rows = slice(int(face.mouth_y + top * face.height), int(face.mouth_y + bottom * face.height))
        return np.abs(frames[:, rows, columns].astype(np.float32) - still[rows, columns].astype(np.float32)).mean(
            axis=(1, 2, 3)
        )

    # The nose moves with the head but not with the jaw: subtracting it leaves the mouth's own motion.
    mouth_motion = change(-0.05, 0.2) - change(-0.3, -0.12)
    energy = wav_energy_per_frame(burst_wav, result.frames)
    assert np.corrcoef(mouth_motion, energy)[0, 1] > 0.8
    assert mouth_motion[energy > 0].mean() > 3 * mouth_motion[energy == 0].mean()


def test_rendering_never_touches_pixels_outside_the_head_region(face_png):
    still = astronaut_pixels(face_png)
    animator = FaceAnimator(still, find_face_layout(still))
    x0, y0, x1, y1 = animator.region
    outside = np.ones(still.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert outside.mean() > 0.6  # the head region is a small part of the frame
    for motion in [(1.0, 1.0, 0.02, 0.02, 0.05), (0.5, 0.0, -0.02, 0.0, -0.05)]:
        np.testing.assert_array_equal(animator.render(*motion)[outside], still[outside])


def test_in_the_video_only_the_head_moves(burst_video):
    _, _, frames, still = burst_video
    animator = FaceAnimator(still, find_face_layout(still))
    x0, y0, x1, y1 = animator.region
    outside = np.ones(still.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    # Per-pixel change over time: compression noise outside the head, real motion at the mouth.
    outside_std = frames[:, outside].astype(np.float32).std(axis=0)  # (pixels, 3)
    face = animator.face
    mouth = frames[
        :,
        int(face.mouth_y) : int(face.mouth_y + 0.15 * face.height),
        int(face.centre_x - 0.15 * face.width) : int(face.centre_x + 0.15 * face.width),
    ]
    mouth_std = mouth.astype(np.float32).std(axis=0)
    assert outside_std.mean() < 1.0 and np.percentile(outside_std, 99) < 4.0
    assert mouth_std.mean() > 10 * outside_std.mean()


def test_the_head_moves_a_little(burst_video):
    _, _, frames, still = burst_video
    animator = FaceAnimator(still, find_face_layout(still))
    forehead = animator.face
    rows = slice(int(forehead.y), int(forehead.y + 0.3 * forehead.height))
    cols = slice(int(forehead.x), int(forehead.x + forehead.width))
    moved = np.abs(frames[:, rows, cols].astype(np.float32) - still[rows, cols]).mean(axis=(1, 2, 3))
    assert moved.max() > 1.0  # visible sway ...
    assert moved.max() < 30.0  # ... but small


def test_jobs_sharing_a_portrait_find_its_face_once_and_make_the_same_video(face_png, burst_wav, tmp_path, monkeypatch):
    import infinitetalk_engine.preview.engine as preview

    calls = []
    real = preview.find_face_layout
    monkeypatch.setattr(preview, "find_face_layout", lambda pixels: calls.append(1) or real(pixels))
    engine = PreviewEngine(EngineOptions())
    videos = []
    for index in range(3):
        output = tmp_path / f"{index}.mp4"
        engine.run(
            JobRequest(f"j{index}", str(face_png), str(burst_wav), str(output), JobParams(seed=3)), RecordingContext()
        )
        videos.append(decode_frames(output))
    assert len(calls) == 1, "the portrait was analysed once"
    assert np.array_equal(videos[0], videos[2])
    engine.run(
        JobRequest("j9", str(face_png), str(burst_wav), str(tmp_path / "720.mp4"), JobParams(resolution="720p")),
        RecordingContext(),
    )
    assert len(calls) == 2, "another bucket is another analysis"
