"""Long audio at flat memory: the decoded speech stays on disk (read in pieces), audio longer than a minute gets its
features window by window as the sampler reads them, and a whole job's peak RSS for 10 minutes of audio is within
5 % of that for 10 seconds (tiny weights, one process per job)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_infinitetalk_e2e import write_wav
from tiny_weights import write_tiny_weights

from infinitetalk_engine.infinitetalk.models.audio_encoder import conv_features, load_wav2vec2, normalize_waveform
from infinitetalk_engine.infinitetalk.models.audio_features import WHOLE_TRACK_FRAMES, StreamedFeatures, speech_features
from infinitetalk_engine.infinitetalk.sampler.audio_windows import clip_windows, extend_reverse_tail
from infinitetalk_engine.infinitetalk.weights import WeightsLayout
from infinitetalk_engine.media.audio import MixedTracks, load_speech, open_speech

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def encoder(weights):
    return load_wav2vec2(WeightsLayout(weights).wav2vec)


def test_a_track_on_disk_reads_what_load_speech_returns_and_mixes_two_speakers(tmp_path):
    first, second = write_wav(tmp_path / "a.wav", 3.0), write_wav(tmp_path / "b.wav", 2.0, hz=330)
    track, frames = open_speech(str(first), tmp_path / "a.f32")
    samples, expected_frames = load_speech(str(first))
    assert frames == expected_frames and np.array_equal(track[0 : track.size], samples)
    assert np.array_equal(track[1000:1010], samples[1000:1010])
    other, _ = open_speech(str(second), tmp_path / "b.f32")
    padded = MixedTracks((track, other.__class__(other.path, other.stored, other.gain, padded_to=track.size)))
    expected = np.clip(samples + np.pad(load_speech(str(second))[0], (0, track.size - other.size)), -1, 1)
    assert padded.size == track.size and np.allclose(padded[0 : padded.size], expected, atol=1e-7)


def test_long_audio_features_are_computed_by_window_close_to_the_whole_track(encoder, tmp_path):
    wav = write_wav(tmp_path / "long.wav", 70.0)  # 1750 frames: more than the whole-track limit
    track, n = open_speech(str(wav), tmp_path / "long.f32")
    assert n > WHOLE_TRACK_FRAMES
    features = speech_features(encoder, track, n)
    assert isinstance(features, StreamedFeatures) and features.shape[0] == n
    samples = track[0 : track.size]
    whole = encoder(samples, n)
    # The CNN encoder in chunks, with whole-track normalisation statistics: the same 50 Hz frames
    conv = conv_features(encoder.model, normalize_waveform(torch.from_numpy(samples)))[0]
    assert torch.allclose(features._conv(0, features.conv_frames), conv, atol=1e-4)
    # The transformer sees a window (with 10 s of context each side): close to the whole track, not equal
    rows = torch.cat([features[torch.arange(s, min(n, s + 72))] for s in range(0, n, 72)])
    error = (rows - whole).abs()
    assert error.mean() < 1e-3 * whole.abs().mean() and error.max() < 1e-2 * whole.abs().max()
    assert features.windows_computed <= 3, "a window serves many clips"


class Indexed:
    """Features that are not a tensor, read by index (as `StreamedFeatures` is)."""

    def __init__(self, tensor):
        self.tensor, self.shape = tensor, tensor.shape

    def __getitem__(self, index):
        return self.tensor[index]


def test_features_read_by_index_give_a_clips_windows_and_the_mirrored_tail_as_a_tensor_does():
    dense = torch.randn(300, 3, 4)
    for end in (250, 300, 340):
        for start in (0, 150, end - 81):
            assert torch.equal(
                clip_windows(extend_reverse_tail(Indexed(dense), end), start, 81),
                clip_windows(extend_reverse_tail(dense, end), start, 81),
            )


def test_a_jobs_peak_memory_does_not_grow_with_the_audios_length(weights, tmp_path):
    short, long = write_wav(tmp_path / "short.wav", 10.0), write_wav(tmp_path / "long.wav", 600.0)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    jobs = []
    for audio in (short, long):
        out = tmp_path / audio.stem
        out.mkdir()
        command = [sys.executable, str(HERE / "long_audio_job.py"), str(weights), str(audio), str(out)]
        jobs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = []
    for job in jobs:
        stdout, stderr = job.communicate(timeout=1200)
        assert job.returncode == 0, stderr[-2000:]
        results.append(tuple(int(v) for v in stdout.split()[-2:]))
    (short_frames, short_rss), (long_frames, long_rss) = results
    assert (short_frames, long_frames) == (250, 15000)
    assert long_rss <= short_rss * 1.05, f"peak RSS {short_rss} KiB for 10 s, {long_rss} KiB for 10 min"
