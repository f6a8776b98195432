"""Which prompts the real engine encodes: InfiniteTalk's own defaults, not Wan2.1's (tiny weights, in process)."""

import pytest
from in_process_engine import run_tiny_job, tiny_engine

# upstream InfiniteTalk's config (`sample_neg_prompt` of its MultiTalk/InfiniteTalk 14B config) starts so; Wan2.1's
# default is Chinese ("色调艳丽，过曝，...").
INFINITETALK_NEGATIVE_START = "bright tones, overexposed, static, blurred details, subtitles"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory.mktemp("weights"))


def encoded_prompts(engine, tmp_path, monkeypatch, **params) -> list[str]:
    """The prompts the engine encoded for one short job with `params`."""
    prompts = []
    encode = engine._encode_text
    monkeypatch.setattr(engine, "_encode_text", lambda prompt: (prompts.append(prompt), encode(prompt))[1])
    run_tiny_job(engine, tmp_path, **params)
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
