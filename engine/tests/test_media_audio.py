"""media/audio.py: any speech file -> 16 kHz mono float32, loudness-normalised like upstream."""

import math
import subprocess

import numpy as np
import pytest
from engine_process import SHARED, error_code
from safetensors.numpy import load_file

from infinitetalk_engine.media.audio import (
    SAMPLE_RATE,
    count_video_frames,
    load_audio,
    load_speech,
    measure_loudness,
    normalize_loudness,
)

AUDIO_FIXTURES = SHARED / "parity" / "audio"


@pytest.mark.parametrize("extension", ["wav", "mp3", "m4a", "ogg", "flac"])
def test_every_format_decodes_to_16k_mono_with_the_same_length(extension, audio_files, speech_wav):
    reference = load_audio(str(speech_wav))
    samples = load_audio(str(audio_files[extension]))
    assert samples.dtype == np.float32 and samples.ndim == 1
    # Lossy codecs pad by up to a few encoder frames; the speech must still be there, at about the same length.
    assert abs(samples.size - reference.size) < 0.1 * SAMPLE_RATE
    assert np.abs(samples).max() > 0.1


def test_decoding_matches_the_fixture_waveform():
    fixture = load_file(str(AUDIO_FIXTURES / "tensors.safetensors"))
    samples = load_audio(str(AUDIO_FIXTURES / "input_4s_16k_float.wav"))
    np.testing.assert_allclose(samples, fixture["waveform"], atol=1e-7)


def test_loudness_normalisation_matches_upstream_fixture():
    fixture = load_file(str(AUDIO_FIXTURES / "tensors.safetensors"))
    normalised = normalize_loudness(fixture["waveform"])
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised, fixture["waveform_loudnorm"], atol=1e-6)
    assert measure_loudness(normalised) == pytest.approx(-23.0, abs=0.01)


@pytest.mark.parametrize("seconds", [0.4, 0.43, 1.0, 7.31, 25.0])
def test_streamed_loudness_equals_pyloudnorms_meter(seconds):
    """Our chunked BS.1770 gives pyloudnorm's integrated loudness for any length (block and chunk edges)."""
    import pyloudnorm

    rng = np.random.default_rng(int(seconds * 100))
    samples = (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    samples[: samples.size // 3] *= 0.01  # a quiet third, for the gates
    expected = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(samples)
    assert measure_loudness(samples) == pytest.approx(expected, abs=1e-5)


def test_silence_is_left_unchanged():
    silence = np.zeros(2 * SAMPLE_RATE, np.float32)
    assert math.isinf(measure_loudness(silence))
    np.testing.assert_array_equal(normalize_loudness(silence), silence)


def test_audio_shorter_than_a_loudness_block_is_left_unchanged():
    short = np.full(SAMPLE_RATE // 10, 0.1, np.float32)  # 100 ms < the 400 ms BS.1770 block
    np.testing.assert_array_equal(normalize_loudness(short), short)


def test_video_frame_count_is_int_seconds_times_25():
    assert count_video_frames(64_000) == 100
    assert count_video_frames(16_000 + 639) == 25
    assert count_video_frames(16_000 + 640) == 26


def test_load_speech_returns_normalised_audio_and_frame_count(speech_wav):
    samples, n_frames = load_speech(str(speech_wav))
    assert n_frames == count_video_frames(samples.size)
    assert measure_loudness(samples) == pytest.approx(-23.0, abs=0.05)


@pytest.mark.parametrize("name", ["noise.wav", "text.mp3", "empty.wav", "noise.png"])
def test_corrupt_audio_is_bad_audio(name, corrupt_files):
    assert error_code(load_audio, str(corrupt_files[name])) == "bad_audio"


def test_missing_file_is_bad_audio(tmp_path):
    assert error_code(load_audio, str(tmp_path / "missing.wav")) == "bad_audio"


def test_an_image_has_no_audio_stream(face_png):
    assert error_code(load_audio, str(face_png), match="audio") == "bad_audio"


def test_audio_over_the_length_limit_is_refused(speech_wav):
    assert error_code(load_audio, str(speech_wav), max_seconds=0.5, match="limit") == "bad_audio"


def test_a_chained_ogg_decodes_to_both_streams_and_the_limit_holds(tmp_path):
    # A 6 s stream followed by a 2 s one: the header of the last says 2 s, the service and the engine decode 8 s.
    parts = []
    for seconds in (6, 2):
        path = tmp_path / f"{seconds}s.ogg"
        tone = ["-f", "lavfi", "-i", f"sine=d={seconds}", "-c:a", "libvorbis", str(path)]
        subprocess.run(["ffmpeg", "-y", "-v", "error", *tone], check=True)
        parts.append(path.read_bytes())
    chained = tmp_path / "chained.ogg"
    chained.write_bytes(b"".join(parts))

    assert abs(load_audio(str(chained)).size / SAMPLE_RATE - 8) < 0.1
    assert error_code(load_audio, str(chained), max_seconds=5, match="limit") == "bad_audio"
