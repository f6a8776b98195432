"""The real infinitetalk engine, end to end through the protocol, on tiny random weights in the seed's layout.

The engine process is `python -m infinitetalk_engine --engine infinitetalk --weights <tiny folder> --device cpu`
with one test-only option, `buckets=32x48` (a single tiny resolution bucket), and `--progress-interval 0` (every
progress event is sent). Everything else is production code:
the weights folder layout, config inference from config.json and tensor shapes, streaming load with the LoRA
merge, the sampler, the MP4 writer.
"""

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from engine_process import SHARED, EngineProcess, error_code, job_message
from parity.dit import fixture_config
from probe import assert_standard_mp4
from tiny_weights import (
    TINY_CLIP,
    TINY_DIT,
    TINY_T5,
    adapter_shapes,
    clip_visual_shapes,
    dit_base_shapes,
    t5_shapes,
    vae_shapes,
    write_tiny_weights,
)

from infinitetalk_engine.infinitetalk.engine import bucket_size, speaker_masks
from infinitetalk_engine.infinitetalk.loading import TensorFile
from infinitetalk_engine.infinitetalk.models.image_encoder import ClipVisionArgs
from infinitetalk_engine.infinitetalk.models.text_encoder import T5EncoderArgs
from infinitetalk_engine.infinitetalk.models.vae import VaeArgs

FIXTURES = SHARED / "parity"
IMAGE = SHARED / "media" / "astronaut.png"
# Every progress event is sent (--progress-interval 0), so the per-step checks hold however fast the machine is.
ENGINE_ARGS = (
    "--engine",
    "infinitetalk",
    "--device",
    "cpu",
    "--progress-interval",
    "0",
    "--engine-option",
    "buckets=32x48",
)
STEPS = 2


def write_wav(path: Path, seconds: float, hz: float = 220.0) -> Path:
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * hz * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def engine(weights):
    process = EngineProcess(*ENGINE_ARGS, "--weights", str(weights), timeout=240)
    yield process
    process.close()


def fixture_shapes(name: str) -> dict:
    with TensorFile(FIXTURES / name / "weights.safetensors") as f:
        return {k: f.shape(k) for k in f}


def test_tiny_weights_have_the_released_key_names_and_shapes():
    # Given each fixture's config, read by the engine's own config types
    dit = fixture_config(FIXTURES)
    t5 = T5EncoderArgs.from_fixture_config(FIXTURES / "t5" / "config.json")
    clip = ClipVisionArgs.from_fixture_config(FIXTURES / "clip" / "config.json")
    clip_out_dim = json.loads((FIXTURES / "clip" / "config.json").read_text())["vision_kwargs"]["out_dim"]
    vae = VaeArgs.from_fixture_config(FIXTURES / "vae" / "config.json")
    # Then the generators write the fixture files' keys and shapes
    assert {**dit_base_shapes(dit), **adapter_shapes(dit)} == fixture_shapes("dit")
    assert t5_shapes(t5) == fixture_shapes("t5")
    assert clip_visual_shapes(clip, clip_out_dim) == fixture_shapes("clip")
    assert vae_shapes(vae) == fixture_shapes("vae")


def test_the_engine_infers_the_tiny_configs_from_the_files(weights):
    from infinitetalk_engine.infinitetalk.model_set import clip_args, dit_config, t5_args
    from infinitetalk_engine.infinitetalk.weights import WeightsLayout

    layout = WeightsLayout(weights)
    assert t5_args(layout.t5) == TINY_T5 and clip_args(layout.clip) == TINY_CLIP
    assert dit_config(layout, TINY_DIT.audio_layers, TINY_DIT.audio_channels) == TINY_DIT


def test_two_clips_with_per_step_progress_make_a_standard_mp4(engine, tmp_path):
    # Given 4 s of audio (100 frames: clips of 81 frames overlapping by 9 -> 2 clips)
    audio = write_wav(tmp_path / "speech.wav", 4.0)
    output = tmp_path / "out.mp4"
    # When
    live = tmp_path / "live"
    engine.send({**job_message("two-clips", IMAGE, audio, output, steps=STEPS, seed=7), "segments_dir": str(live)})
    events = engine.job_events("two-clips", timeout=240)
    # Then: one MP4 as long as the audio, H.264 + AAC at 25 fps, in the (test) bucket size
    done = events[-1]
    assert done["type"] == "done", done
    assert (done["frames"], done["width"], done["height"], done["duration_seconds"]) == (100, 48, 32, 4.0)
    assert_standard_mp4(output, 100, 48, 32)
    # Stages in protocol order, a generating stage per clip
    stages = [e["stage"] for e in events if e["type"] == "stage"]
    assert stages == [
        "decoding_audio",
        "audio_features",
        "encoding_image",
        "encoding_text",
        "generating",
        "generating",
        "encoding_video",
    ]
    # Progress: every step of every clip, fraction monotonic up to 1
    progress = [e for e in events if e["type"] == "progress"]
    stepped = [(e["clip"], e["step"]) for e in progress if e.get("step") is not None]
    assert all(pair in stepped for pair in [(1, 1), (1, 2), (2, 1), (2, 2)])
    assert all(e["steps"] == STEPS and e["clips"] == 2 for e in progress if e.get("step") is not None)
    fractions = [e["fraction"] for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Each clip became a live segment as it finished: clip 1 (81 frames), clip 2 (the 19 new ones)
    segments = [e for e in events if e["type"] == "segment"]
    assert [(s["clip"], s["clips"], s["duration_seconds"]) for s in segments] == [(1, 2, 3.24), (2, 2, 0.76)]
    second_clip = [i for i, e in enumerate(events) if e.get("stage") == "generating"][1]
    assert events.index(segments[0]) < second_clip  # clip 1 is playable before clip 2 is made
    assert (live / "live.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")


def test_short_audio_gives_a_video_as_short_as_the_audio(engine, tmp_path):
    # Upstream needs more than 3.24 s; 1 s here gives one clip trimmed to 25 frames. The LoRA is re-merged
    # at another scale for this job (and back for the next), which must not disturb the engine.
    audio = write_wav(tmp_path / "short.wav", 1.0)
    output = tmp_path / "short.mp4"
    engine.send(job_message("short", IMAGE, audio, output, steps=1, lora_scale=0.5))
    done = engine.job_events("short", timeout=240)[-1]
    assert done["type"] == "done", done
    assert_standard_mp4(output, 25, 48, 32)


def test_two_speakers_with_boxes(engine, tmp_path):
    first, second = write_wav(tmp_path / "a.wav", 1.2, 220), write_wav(tmp_path / "b.wav", 0.8, 330)
    output = tmp_path / "duo.mp4"
    engine.send(
        job_message(
            "duo",
            IMAGE,
            first,
            output,
            steps=1,
            audio2_path=str(second),
            speaker_boxes=[[0, 0, 250, 400], [260, 0, 512, 400]],
        )
    )
    done = engine.job_events("duo", timeout=240)[-1]
    assert done["type"] == "done", done
    assert_standard_mp4(output, 30, 48, 32)  # as long as the longer track


def test_cancel_stops_the_job_and_leaves_no_file(engine, tmp_path):
    audio = write_wav(tmp_path / "long.wav", 12.0)
    output = tmp_path / "cancelled.mp4"
    # One write: the job is running when the cancel is read, and a tiny model on a fast machine cannot finish first.
    engine.send_all(job_message("cancel-me", IMAGE, audio, output, steps=4), {"type": "cancel", "job_id": "cancel-me"})
    last = engine.job_events("cancel-me", timeout=60)[-1]
    assert last["type"] == "error" and last["code"] == "cancelled"
    assert not output.exists() and not Path(str(output) + ".part").exists()


def test_bad_input_is_an_error_with_a_code_and_the_engine_carries_on(engine, tmp_path):
    not_an_image = tmp_path / "image.png"
    not_an_image.write_bytes(b"not an image")
    engine.send(job_message("bad-image", not_an_image, write_wav(tmp_path / "a.wav", 1.0), tmp_path / "x.mp4"))
    assert engine.job_events("bad-image", timeout=60)[-1]["code"] == "bad_image"
    engine.send(job_message("bad-params", IMAGE, tmp_path / "a.wav", tmp_path / "y.mp4", color_correction=2.0))
    assert engine.job_events("bad-params", timeout=60)[-1]["code"] == "bad_params"
    engine.send({"type": "heartbeat", "seq": 5})
    assert engine.next_event("heartbeat", timeout=30)["seq"] == 5


def test_a_missing_weights_file_fails_the_load_naming_it(weights, tmp_path):
    broken = tmp_path / "weights"
    shutil.copytree(weights, broken)
    (broken / "Wan2.1-I2V-14B-480P" / "Wan2.1_VAE.pth").unlink()
    process = EngineProcess(*ENGINE_ARGS, "--weights", str(broken), wait_ready=False, timeout=240)
    try:
        error = process.next_event("error", timeout=240)
        assert error["code"] == "load_failed" and error["job_id"] is None
        assert "Wan2.1_VAE.pth" in error["message"]
        assert process.process.wait(60) != 0
    finally:
        process.close()


# Speaker masks (no process) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution, table", [("480p", "table_480"), ("720p", "table_720")])
def test_the_engine_picks_upstreams_bucket_for_every_aspect_ratio_from_0_1_to_4(resolution, table):
    # Upstream's rule, from its own table (sampler fixture): the entry whose key is nearest h / w, first on ties
    upstream = json.loads((FIXTURES / "sampler" / "meta.json").read_text())["buckets"][table]
    for ratio in np.arange(0.1, 4.0, 0.005):
        width, height = 10_000, round(10_000 * ratio)
        key = min(upstream, key=lambda k: abs(float(k) - height / width))
        assert bucket_size(width, height, resolution) == tuple(upstream[key][0]), (resolution, ratio)


def test_one_speaker_masks_are_all_ones():
    masks = speaker_masks(640, 480, 32, 48, None, 1)
    assert masks.shape == (3, 4, 6) and bool(masks.all())


def test_default_two_speaker_masks_split_the_image_left_and_right():
    masks = speaker_masks(96, 64, 64, 96, None, 2)  # no resize: latent grid 8 x 12
    assert masks.shape == (3, 8, 12)
    assert masks[0, 4, :6].sum() > 0 and masks[0, 4, 6:].sum() == 0
    assert masks[1, 4, 6:].sum() > 0 and masks[1, 4, :6].sum() == 0
    assert bool(((masks[0] + masks[1] + masks[2]) >= 1).all())


def test_speaker_boxes_are_x_horizontal_and_follow_the_crop():
    # A 200x100 image cropped to a 64x64 bucket: only the centre 100x100 stays; a box on the left edge falls away.
    masks = speaker_masks(200, 100, 64, 64, [[0, 0, 40, 100], [50, 0, 150, 100]], 2)
    assert masks[0].sum() == 0  # outside the crop
    assert bool(masks[1].all())  # the crop is entirely speaker 2


# Engine options (no process) ---------------------------------------------------------------------------------------


def test_engine_options_are_parsed_and_checked():
    from infinitetalk_engine.infinitetalk.engine import EngineSettings

    settings = EngineSettings.from_options({"buckets": "32x48,48x32", "lora": "off", "two_speakers": "on"})
    assert settings.buckets == ((32, 48), (48, 32)) and not settings.use_lora and settings.two_speakers is True
    for bad in ({"buckets": "30x48"}, {"frame_num": "80"}, {"dtype": "int8"}, {"no_such_option": "1"}):
        assert error_code(EngineSettings.from_options, bad) == "load_failed"
