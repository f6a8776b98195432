"""Which prompts the real engine encodes: InfiniteTalk's own defaults, not Wan2.1's (tiny weights, in process)."""

import threading

import pytest
from test_infinitetalk_e2e import IMAGE, write_wav
from tiny_weights import write_tiny_weights

from infinitetalk_engine.contract import EngineOptions, JobParams, JobRequest
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.job_context import ProtocolJobContext

# upstream InfiniteTalk's config (`sample_neg_prompt` of its MultiTalk/InfiniteTalk 14B config) starts so; Wan2.1's
# default is Chinese ("色调艳丽，过曝，...").
INFINITETALK_NEGATIVE_START = "bright tones, overexposed, static, blurred details, subtitles"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    weights = write_tiny_weights(tmp_path_factory.mktemp("weights"))
    engine = InfiniteTalkEngine(
        EngineOptions(
            weights=str(weights), device="cpu", extra={"buckets": "32x48", "frame_num": "9", "motion_frames": "5"}
        )
    )
    engine.load()
    return engine


def encoded_prompts(engine, tmp_path, monkeypatch, **params) -> list[str]:
    """The prompts the engine encoded for one short job with `params`."""
    prompts = []
    encode = engine._encode_text
    monkeypatch.setattr(engine, "_encode_text", lambda prompt: (prompts.append(prompt), encode(prompt))[1])
    audio = write_wav(tmp_path / "speech.wav", 0.2)
    job = JobRequest("job", str(IMAGE), str(audio), str(tmp_path / "out.mp4"), JobParams(steps=1, **params))
    engine.run(job, ProtocolJobContext("job", lambda _: None, threading.Event(), min_interval=0))
    return prompts


def test_text_guidance_without_a_negative_prompt_uses_infinitetalks_default(engine, tmp_path, monkeypatch):
    prompts = encoded_prompts(engine, tmp_path, monkeypatch, text_guidance_scale=5.0)
    assert len(prompts) == 2
    assert prompts[1].startswith(INFINITETALK_NEGATIVE_START)
    assert not any("\u4e00" <= char <= "\u9fff" for char in prompts[1])  # no Chinese: not Wan2.1's


def test_a_jobs_own_negative_prompt_replaces_the_default(engine, tmp_path, monkeypatch):
    prompts = encoded_prompts(engine, tmp_path, monkeypatch, text_guidance_scale=5.0, negative_prompt="blurry")
    assert prompts[1] == "blurry"


def test_without_text_guidance_no_negative_prompt_is_encoded(engine, tmp_path, monkeypatch):
    assert len(encoded_prompts(engine, tmp_path, monkeypatch, text_guidance_scale=1.0)) == 1
