"""`audio_guidance_steps=N`: audio guidance on the first N steps only, one model pass fewer on every later step.
The default (unset) is upstream's guidance on every step; N = steps is the same video."""

import numpy as np
import torch
from in_process_engine import run_tiny_job, tiny_engine
from test_lora_library import frames

from infinitetalk_engine.infinitetalk.sampler.guidance import COND, DROP_TEXT, UNCOND, Guidance


def test_without_audio_guidance_text_guidance_needs_two_passes_and_matches_the_three_pass_formula():
    g = torch.Generator().manual_seed(0)
    cond, drop_text, uncond = (torch.randn(2, 3, generator=g) for _ in range(3))
    full = Guidance(5.0, 1.0)
    reduced = Guidance(5.0, 1.0, skip_unit_audio=True)
    assert full.branches == (COND, DROP_TEXT, UNCOND) and reduced.branches == (COND, DROP_TEXT)
    preds = {COND: cond, DROP_TEXT: drop_text, UNCOND: uncond}
    assert torch.allclose(full.combine(preds), reduced.combine(preds), atol=1e-5)
    assert Guidance(1.0, 1.0, skip_unit_audio=True).branches == (COND,)


def test_audio_guidance_on_fewer_steps_takes_fewer_passes_and_all_steps_is_the_default(tmp_path):
    engine = tiny_engine(tmp_path / "weights")
    calls = []
    forward = engine.models.dit.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    engine.models.dit.forward = counting
    runs = {}
    for label, steps in (("default", None), ("all", 2), ("first", 1), ("none", 0)):
        calls.clear()
        out = tmp_path / label
        out.mkdir()
        runs[label] = (
            frames(run_tiny_job(engine, out, steps=2, seed=1, audio_guidance_steps=steps).output_path),
            len(calls),
        )
    assert runs["default"][1] == 4 and runs["first"][1] == 3 and runs["none"][1] == 2  # two passes per step, then one
    assert np.array_equal(runs["default"][0], runs["all"][0])
    assert not np.array_equal(runs["default"][0], runs["none"][0]), "audio guidance changes the video"
    spec = next(p for p in engine.capabilities()["parameters"] if p["name"] == "audio_guidance_steps")
    assert spec["type"] == "integer" and spec["minimum"] == 0 and spec.get("default") is None
