"""Clips are H.264-encoded on a thread while the next clip is sampled: the video is the same as encoding inline,
clips are written in order, and an encoding error fails the job (it is raised in the generation loop)."""

import threading

import numpy as np
import pytest
from in_process_engine import TINY_JOB_OPTIONS, run_tiny_job
from test_lora_library import frames
from tiny_weights import write_tiny_weights

from infinitetalk_engine.contract import EngineOptions
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.media.background_encoder import BackgroundClipEncoder


class RecordingWriter:
    """Records what it is given; fails on clip `fail_at` (1-based) when set; can be held inside `write`."""

    def __init__(self, fail_at: int | None = None):
        self.clips: list[int] = []
        self.ends = 0
        self.fail_at = fail_at
        self.hold = threading.Event()
        self.hold.set()

    def write(self, frames):
        self.hold.wait()
        if self.fail_at == len(self.clips) + 1:
            raise OSError(28, "No space left on device")
        self.clips.append(int(frames[0, 0, 0, 0]))
        return len(frames)

    def end_clip(self):
        self.ends += 1


def clip(value: int) -> np.ndarray:
    return np.full((2, 4, 4, 3), value, np.uint8)


def test_clips_are_written_in_order_and_finish_waits_for_all():
    writer = RecordingWriter()
    writer.hold.clear()  # the thread is held in the first write while the loop goes on
    with BackgroundClipEncoder(writer) as encoder:
        encoder.submit(clip(1))
        encoder.submit(clip(2))
        writer.hold.set()
        encoder.submit(clip(3))
        encoder.finish()
        assert writer.clips == [1, 2, 3] and writer.ends == 3


def test_an_encoding_error_is_raised_in_the_generation_loop():
    encoder = BackgroundClipEncoder(RecordingWriter(fail_at=2))
    with pytest.raises(OSError, match="No space left"):
        for value in range(1, 10):
            encoder.submit(clip(value))
        encoder.finish()


def test_a_job_that_stops_early_waits_for_the_encoder_before_leaving():
    writer = RecordingWriter()
    with pytest.raises(RuntimeError, match="cancelled"), BackgroundClipEncoder(writer) as encoder:
        encoder.submit(clip(1))
        raise RuntimeError("cancelled")
    assert writer.clips == [1], "the queued clip was written before the job's output is removed"


def test_background_encoding_makes_the_same_video_as_inline(tmp_path):
    folder = write_tiny_weights(tmp_path / "weights")
    videos = []
    for switch in ("on", "off"):
        extra = {**TINY_JOB_OPTIONS, "encode_in_background": switch}
        engine = InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra=extra))
        engine.load()
        out = tmp_path / switch
        out.mkdir()
        result = run_tiny_job(engine, out, seconds=0.8, seed=2)  # 20 frames: several 9-frame clips
        videos.append(frames(result.output_path))
    assert len(videos[0]) == 20 and np.array_equal(videos[0], videos[1])
