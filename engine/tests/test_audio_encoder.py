"""wav2vec2 features at 25 fps: the pretraining-layout loader and our forward. Fixture: ../shared/parity/audio."""

import json
import shutil

import numpy as np
import pytest
import torch
from parity import default_fixture_root
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.loading import WeightsError
from infinitetalk_engine.infinitetalk.models.audio_encoder import (
    conv_features,
    layer_outputs,
    load_wav2vec2,
    normalize_waveform,
    project_features,
    resample_frames,
    video_frame_count,
)

AUDIO = default_fixture_root() / "audio"
FOLDER = AUDIO / "tiny_wav2vec2"


@pytest.fixture(scope="module")
def encoder():
    return load_wav2vec2(FOLDER)


@pytest.fixture(scope="module")
def fixture():
    return load_file(AUDIO / "tensors.safetensors")


def copy_folder(tmp_path, state=None, preprocessor=None):
    """A copy of the tiny HF folder, optionally with other weights (saved as pytorch_model.bin) or preprocessing."""
    folder = tmp_path / "wav2vec"
    folder.mkdir()
    shutil.copy(FOLDER / "config.json", folder)
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    if state is None:
        shutil.copy(FOLDER / "model.safetensors", folder)
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_frame_count_is_seconds_times_25_rounded_down():
    assert video_frame_count(64000) == 100
    assert video_frame_count(16001) == 25
    assert video_frame_count(639) == 0


def test_output_is_frames_by_layers_by_width(encoder, fixture):
    features = encoder(fixture["waveform_loudnorm"].numpy())
    config = encoder.model.config
    assert features.shape == (100, config.num_hidden_layers, config.hidden_size)


def test_our_layer_loop_equals_transformers_hidden_states_without_resampling(encoder, fixture):
    # transformers 5.x records hidden states through hooks; check it returns input + all 12 layers
    with torch.no_grad():
        stock = encoder.model(fixture["input_values"][None], output_hidden_states=True).hidden_states
        conv = conv_features(encoder.model, fixture["input_values"])
        ours = layer_outputs(encoder.model, project_features(encoder.model, conv.transpose(1, 2)))
    assert len(stock) == encoder.model.config.num_hidden_layers + 1
    assert len(ours) == len(stock) - 1
    for mine, theirs in zip(ours, stock[1:], strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)


def test_resampling_keeps_the_first_and_last_conv_frames(fixture):
    conv = fixture["conv_features"]  # (1, C, 199) at 50 Hz
    frames = resample_frames(conv, 100)
    assert frames.shape == (1, 100, conv.shape[1])
    assert torch.allclose(frames[0, 0], conv[0, :, 0]) and torch.allclose(frames[0, -1], conv[0, :, -1])


def test_normalisation_gives_zero_mean_unit_variance():
    x = normalize_waveform(torch.linspace(-0.3, 0.5, 1600))
    assert abs(x.mean().item()) < 1e-5 and abs(x.var(unbiased=False).item() - 1) < 1e-4


def test_the_preprocessor_can_turn_normalisation_off(tmp_path):
    encoder = load_wav2vec2(copy_folder(tmp_path, preprocessor={"do_normalize": False}))
    assert encoder.normalize is False


def test_a_pytorch_model_bin_in_the_pretraining_layout_loads(tmp_path, encoder, fixture):
    folder = copy_folder(tmp_path, state=load_file(FOLDER / "model.safetensors"))
    loaded = load_wav2vec2(folder)
    waveform = fixture["waveform_loudnorm"].numpy()[:16000]
    assert torch.equal(loaded(waveform), encoder(waveform))


def test_an_unknown_key_fails_naming_the_weights_file(tmp_path):
    state = load_file(FOLDER / "model.safetensors")
    state["wav2vec2.encoder.extra"] = torch.zeros(1)
    folder = copy_folder(tmp_path, state=state)
    with pytest.raises(WeightsError) as error:
        load_wav2vec2(folder)
    assert "pytorch_model.bin" in str(error.value) and "encoder.extra" in str(error.value)


def test_a_folder_without_weights_fails(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    shutil.copy(FOLDER / "config.json", folder)
    with pytest.raises(WeightsError, match="no weights file"):
        load_wav2vec2(folder)


def test_stereo_input_is_refused(encoder):
    with pytest.raises(ValueError, match="mono"):
        encoder(np.zeros((2, 16000), dtype=np.float32))
