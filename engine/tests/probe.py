"""Test helpers that look at a finished MP4 from the outside: ffprobe for the streams, PyAV for the pixels."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def ffprobe(path: Path) -> dict[str, Any]:
    """{"video": stream, "audio": stream, "format": format} as ffprobe reports them."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(result.stdout)
    streams = {s["codec_type"]: s for s in info["streams"]}
    return {"video": streams.get("video"), "audio": streams.get("audio"), "format": info["format"]}


def assert_standard_mp4(path: Path, expected_frames: int, width: int, height: int) -> dict[str, Any]:
    """H.264 yuv420p at 25 fps + AAC, with `expected_frames` frames and both streams that long (within a frame)."""
    info = ffprobe(path)
    video, audio = info["video"], info["audio"]
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert Fraction(video["avg_frame_rate"]) == 25 and Fraction(video["r_frame_rate"]) == 25
    assert (video["width"], video["height"]) == (width, height)
    assert int(video["nb_read_frames"]) == expected_frames
    assert audio is not None and audio["codec_name"] == "aac"
    seconds = expected_frames / 25
    assert abs(float(video["duration"]) - seconds) <= 1 / 25
    assert abs(float(audio["duration"]) - seconds) <= 1 / 25
    return info


def decode_frames(path: Path) -> np.ndarray:
    """Every video frame as (N, H, W, 3) uint8 RGB (small test videos only)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
