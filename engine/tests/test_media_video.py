"""media/video.py: the clip-by-clip MP4 writer."""

import numpy as np
import pytest
from probe import assert_standard_mp4, decode_frames

from infinitetalk_engine.media.video import Mp4Writer, part_path_for

WIDTH, HEIGHT = 64, 48


def frames(count: int, start: int = 0) -> np.ndarray:
    """(count, H, W, 3) frames whose brightness encodes their index."""
    values = (np.arange(start, start + count) * 10 % 250).astype(np.uint8)
    return np.broadcast_to(values[:, None, None, None], (count, HEIGHT, WIDTH, 3)).copy()


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_batches_become_one_h264_aac_mp4_at_25_fps(tmp_path):
    output = tmp_path / "out.mp4"
    with Mp4Writer(str(output), WIDTH, HEIGHT, audio=tone(2.0)) as writer:
        for start in range(0, 50, 20):  # uneven batches: 20, 20, 10
            writer.write(frames(min(20, 50 - start), start))
    assert output.is_file() and not (tmp_path / "out.mp4.part").exists()
    assert_standard_mp4(output, 50, WIDTH, HEIGHT)
    decoded = decode_frames(output)
    # Frame order and content survive (lossy: compare mean brightness).
    np.testing.assert_allclose(decoded.mean(axis=(1, 2, 3)), frames(50).mean(axis=(1, 2, 3)), atol=3)


def test_frames_past_max_frames_are_dropped_and_audio_is_trimmed_to_the_video(tmp_path):
    output = tmp_path / "trimmed.mp4"
    with Mp4Writer(str(output), WIDTH, HEIGHT, audio=tone(3.0), max_frames=30) as writer:
        kept = [writer.write(frames(25)), writer.write(frames(25))]
    assert kept == [25, 5] and writer.frames_written == 30
    assert_standard_mp4(output, 30, WIDTH, HEIGHT)


def test_an_exception_inside_the_writer_leaves_no_file(tmp_path):
    output = tmp_path / "failed.mp4"
    with pytest.raises(RuntimeError), Mp4Writer(str(output), WIDTH, HEIGHT, audio=tone(1.0)) as writer:
        writer.write(frames(5))
        writer.end_clip()  # the packets reach the file
        assert (tmp_path / "failed.mp4.part").exists()
        raise RuntimeError("cancelled mid-clip")
    assert list(tmp_path.iterdir()) == []


def test_the_part_file_is_what_is_written_until_close(tmp_path):
    output = tmp_path / "out.mp4"
    writer = Mp4Writer(str(output), WIDTH, HEIGHT)
    writer.write(frames(3))
    assert part_path_for(str(output)) == str(output) + ".part"
    assert not output.exists()
    assert writer.close() == str(output) and output.exists()


def test_wrong_frame_shape_or_type_is_refused(tmp_path):
    writer = Mp4Writer(str(tmp_path / "x.mp4"), WIDTH, HEIGHT)
    with pytest.raises(ValueError):
        writer.write(np.zeros((2, HEIGHT, WIDTH + 2, 3), np.uint8))
    with pytest.raises(ValueError):
        writer.write(np.zeros((2, HEIGHT, WIDTH, 3), np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_odd_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        Mp4Writer(str(tmp_path / "x.mp4"), 63, 48)
