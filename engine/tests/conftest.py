"""Shared test media, generated once per session with ffmpeg/espeak-ng/Pillow, plus repo-relative paths.

Everything is short (a few seconds of audio) so the whole engine suite stays fast on 2 cores.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from engine_process import SHARED
from PIL import Image, ImageDraw

AUDIO_FORMATS = {  # extension -> ffmpeg audio codec
    "wav": "pcm_s16le",
    "mp3": "libmp3lame",
    "m4a": "aac",
    "ogg": "libvorbis",
    "flac": "flac",
}


def run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono 16-bit WAV from float samples in [-1, 1]."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir) -> Path:
    """About 2 s of English speech from espeak-ng (22.05 kHz mono)."""
    path = media_dir / "speech.wav"
    run("espeak-ng", "-s", "170", "-w", str(path), "Hello there, this is a test.")
    return path


@pytest.fixture(scope="session")
def audio_files(media_dir, speech_wav) -> dict[str, Path]:
    """The same speech as WAV, MP3, M4A (AAC), OGG (Vorbis) and FLAC, stereo at 44.1 kHz where the codec allows."""
    files = {}
    for extension, codec in AUDIO_FORMATS.items():
        path = media_dir / f"speech_44k.{extension}"
        run("ffmpeg", "-y", "-v", "error", "-i", str(speech_wav), "-ac", "2", "-ar", "44100", "-c:a", codec, str(path))
        files[extension] = path
    return files


@pytest.fixture(scope="session")
def burst_wav(media_dir) -> Path:
    """4 s of 16 kHz audio: 0.4 s voiced bursts (a 180 Hz buzz) alternating with 0.4 s of silence."""
    rate = 16_000
    t = np.arange(4 * rate) / rate
    buzz = 0.3 * np.sign(np.sin(2 * np.pi * 180 * t)) * np.abs(np.sin(2 * np.pi * 900 * t))
    gate = (np.floor(t / 0.4) % 2 == 0).astype(np.float64)
    return write_wav(media_dir / "bursts.wav", buzz * gate, rate)


@pytest.fixture(scope="session")
def nine_second_wav(media_dir) -> Path:
    """9 s of tone bursts: three clips of the preview engine."""
    rate = 16_000
    t = np.arange(9 * rate) / rate
    return write_wav(media_dir / "nine.wav", 0.2 * np.sin(2 * np.pi * 220 * t) * (np.floor(t / 0.3) % 2 == 0), rate)


@pytest.fixture(scope="session")
def long_wav(media_dir) -> Path:
    """60 s of tone bursts: a job long enough to cancel or to heartbeat during (tests that need it running say so
    in the same write as the job, or cancel it; nobody waits for it to end)."""
    rate = 16_000
    t = np.arange(60 * rate) / rate
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.floor(t / 0.3) % 2 == 0)
    return write_wav(media_dir / "long.wav", tone, rate)


@pytest.fixture(scope="session")
def face_png() -> Path:
    path = SHARED / "media" / "astronaut.png"
    assert path.is_file(), f"shared test media missing: {path}"
    return path


@pytest.fixture(scope="session")
def image_files(media_dir, face_png) -> dict[str, Path]:
    """The astronaut face as PNG, JPEG and WebP."""
    image = Image.open(face_png).convert("RGB")
    files = {"png": face_png}
    for extension, kind in (("jpg", "JPEG"), ("webp", "WEBP")):
        path = media_dir / f"astronaut.{extension}"
        image.save(path, kind, quality=90)
        files[extension] = path
    return files


@pytest.fixture(scope="session")
def no_face_png(media_dir) -> Path:
    """A landscape with a sun and a house: shapes and gradients, no face."""
    image = Image.new("RGB", (480, 320))
    draw = ImageDraw.Draw(image)
    for y in range(320):
        draw.line([(0, y), (480, y)], fill=(90 + y // 4, 140 + y // 8, 220 - y // 3))
    draw.ellipse([360, 30, 430, 100], fill=(250, 220, 80))
    draw.rectangle([120, 170, 260, 300], fill=(160, 80, 60))
    draw.polygon([(110, 170), (190, 110), (270, 170)], fill=(120, 40, 40))
    path = media_dir / "landscape.png"
    image.save(path)
    return path


@pytest.fixture(scope="session")
def corrupt_files(media_dir, face_png) -> dict[str, Path]:
    """Files that look like media by name but are not."""
    rng = np.random.default_rng(0)
    files = {
        "noise.wav": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text.mp3": b"this is not an mp3 file\n" * 50,
        "empty.wav": b"",
        "noise.png": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated.png": face_png.read_bytes()[:2000],
        "text.jpg": b"not a jpeg",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = media_dir / name
        paths[name].write_bytes(content)
    return paths
