"""The sampler's pure functions: schedule, guidance, colour matching, audio windows and the clip plan.

Upstream's exact numbers are pinned by the parity checks (parity/sampler.py); these tests state the rules.
"""

import json

import pytest
import torch
from parity import default_fixture_root
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.sampler.audio_windows import (
    clip_windows,
    extend_reverse_tail,
    plan_stream,
    window_indices,
)
from infinitetalk_engine.infinitetalk.sampler.color import match_colors
from infinitetalk_engine.infinitetalk.sampler.guidance import COND, DROP_AUDIO, DROP_TEXT, UNCOND, Guidance
from infinitetalk_engine.infinitetalk.sampler.schedule import euler_step, timesteps

PIPELINE = default_fixture_root() / "pipeline"


# 1. Timesteps.


@pytest.mark.parametrize("steps, shift", [(4, 7.0), (40, 11.0), (1, 5.0)])
def test_schedule_runs_from_1000_down_to_0(steps, shift):
    t = timesteps(steps, shift)
    assert t.shape == (steps + 1,) and t.dtype == torch.float32
    assert t[0] == 1000 and t[-1] == 0
    assert (t[1:] < t[:-1]).all()


def test_shift_1_is_the_plain_linspace():
    assert torch.allclose(timesteps(4, 1.0), torch.tensor([1000.0, 667.0, 334.0, 1.0, 0.0]))


def test_a_larger_shift_spends_more_steps_at_high_noise():
    assert (timesteps(8, 11.0)[1:-1] > timesteps(8, 7.0)[1:-1]).all()


@pytest.mark.parametrize("steps, shift", [(0, 7.0), (4, 0.0)])
def test_bad_schedule_parameters_are_refused(steps, shift):
    with pytest.raises(ValueError):
        timesteps(steps, shift)


def test_euler_and_guidance_reproduce_upstreams_recorded_steps():
    # Given upstream's recorded per-step latents and predictions of the tiny pipeline run (README §8)
    tensors = load_file(PIPELINE / "tensors.safetensors")
    params = json.loads((PIPELINE / "meta.json").read_text())["params"]
    guidance = Guidance(params["text_guide_scale"], params["audio_guide_scale"])
    schedule = timesteps(params["sampling_steps"], params["shift"])
    for clip, motion_latents in ((0, 1), (1, 2)):
        for step in range(params["sampling_steps"]):
            prefix = f"clip{clip}_step{step}"
            preds = {name: tensors[f"{prefix}_pred_{name}"] for name in (COND, DROP_TEXT, UNCOND)}
            # When one guided Euler step is taken
            latent = euler_step(
                tensors[f"{prefix}_latent_in"], guidance.combine(preds), schedule[step], schedule[step + 1]
            )
            # Then it matches the next step's input (or the final latent) outside the re-injected motion latents
            last = step + 1 == params["sampling_steps"]
            expected = tensors[f"clip{clip}_final_latent" if last else f"clip{clip}_step{step + 1}_latent_in"]
            assert torch.allclose(latent[:, motion_latents:], expected[:, motion_latents:], atol=1e-5)


# 2. Guidance.


@pytest.mark.parametrize(
    "text, audio, branches",
    [
        (5.0, 4.0, (COND, DROP_TEXT, UNCOND)),
        (1.0, 2.0, (COND, DROP_AUDIO)),
        (1.0 + 1e-12, 2.0, (COND, DROP_AUDIO)),
        (1.0, 1.0, (COND,)),
    ],
)
def test_the_scales_decide_how_many_model_passes_a_step_needs(text, audio, branches):
    assert Guidance(text, audio).branches == branches


def test_one_pass_guidance_is_the_conditional_prediction():
    cond = torch.randn(16, 2, 3, 3)
    assert torch.equal(Guidance(1.0, 1.0).combine({COND: cond}), cond)


def test_two_pass_guidance_extrapolates_away_from_no_audio():
    cond, drop_audio = torch.ones(4), torch.zeros(4)
    assert torch.equal(Guidance(1.0, 3.0).combine({COND: cond, DROP_AUDIO: drop_audio}), torch.full((4,), 3.0))


def test_missing_predictions_are_named():
    with pytest.raises(ValueError, match="uncond"):
        Guidance(5.0, 4.0).combine({COND: torch.zeros(1), DROP_TEXT: torch.zeros(1)})


def test_apg_momentum_restarts_with_a_new_guidance_object():
    preds = {
        name: torch.randn(1, 16, 2, 3, 3, generator=torch.Generator().manual_seed(i))
        for i, name in enumerate((COND, DROP_TEXT, UNCOND))
    }
    first = Guidance(5.0, 4.0, use_apg=True).combine(preds)
    again = Guidance(5.0, 4.0, use_apg=True)
    assert torch.equal(again.combine(preds), first)
    assert not torch.equal(again.combine(preds), first)  # the second step carries momentum


# 3. Colour matching.


def gradient_video(frames=3, size=8, offset=0.0):
    ramp = torch.linspace(-0.8, 0.8, size)
    image = torch.stack(
        [ramp[:, None].expand(size, size), ramp[None, :].expand(size, size), (ramp[:, None] * ramp[None, :])]
    )
    return (image[:, None].repeat(1, frames, 1, 1) * 0.5 + offset).clamp(-1, 1)


def test_strength_0_returns_the_video_untouched():
    video = gradient_video()
    assert match_colors(video, video[:, 0], 0.0) is video


def test_strength_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="strength"):
        match_colors(gradient_video(), gradient_video()[:, 0], 1.5)


def test_a_clip_matched_to_its_own_frame_is_unchanged():
    video = gradient_video(frames=1)
    assert torch.allclose(match_colors(video, video[:, 0], 1.0), video, atol=1e-4)


def test_matching_pulls_a_shifted_clip_back_to_the_reference_colours():
    reference = gradient_video(frames=1)[:, 0]
    drifted = gradient_video(offset=0.2)
    corrected = match_colors(drifted, reference, 1.0)
    half = match_colors(drifted, reference, 0.5)
    assert corrected.shape == drifted.shape and corrected.dtype == drifted.dtype
    error = lambda v: (v - reference[:, None]).abs().mean()  # noqa: E731
    assert error(corrected) < error(half) < error(drifted)


# 4. Audio windows and the clip plan.


def test_windows_are_five_frames_around_each_video_frame_clamped_to_the_audio():
    indices = window_indices(0, 81, 100)
    assert indices.shape == (81, 5)
    assert indices[0].tolist() == [0, 0, 0, 1, 2]
    assert indices[40].tolist() == [38, 39, 40, 41, 42]
    assert window_indices(70, 81, 100)[-1].tolist() == [99, 99, 99, 99, 99]


def test_clip_windows_gather_features_per_video_frame():
    features = torch.arange(100.0)[:, None, None].expand(100, 12, 4)
    windows = clip_windows(features, 72, 81)
    assert windows.shape == (81, 5, 12, 4)
    assert windows[0, :, 0, 0].tolist() == [70, 71, 72, 73, 74]


def test_the_tail_is_extended_in_reverse_only_when_the_clip_runs_past_the_audio():
    features = torch.arange(10)
    assert torch.equal(extend_reverse_tail(features, 9), features)
    assert extend_reverse_tail(features, 12).tolist() == list(range(10)) + [9, 8, 7, 6, 5]


def test_ten_seconds_of_audio_make_four_clips_trimmed_to_the_audio():
    plan = plan_stream(250)
    assert [c.start for c in plan.clips] == [0, 72, 144, 216]
    assert [c.drop for c in plan.clips] == [0, 9, 9, 9]
    assert plan.generated_frames == 297 and plan.output_frames == 250 and plan.last_end == 297


def test_audio_shorter_than_one_clip_makes_one_clip_trimmed_to_the_audio():
    plan = plan_stream(30)
    assert len(plan.clips) == 1 and plan.output_frames == 30
    # the reversed tail can only repeat what exists (30 of the 54 frames wanted); clamping covers the rest
    extended = extend_reverse_tail(torch.arange(30), plan.last_end)
    assert extended.tolist() == list(range(30)) + list(range(29, -1, -1))
    assert clip_windows(extended, 0, 81)[-1].tolist() == [0, 0, 0, 0, 0]


def test_the_frame_limit_stops_the_stream_without_extending_the_audio():
    plan = plan_stream(1000, max_frames=200)
    assert [c.start for c in plan.clips] == [0, 72, 144]
    assert plan.output_frames == 200 and plan.last_end < 1000


def test_clip_mode_makes_exactly_one_clip():
    plan = plan_stream(250, max_frames=81)
    assert len(plan.clips) == 1 and plan.output_frames == 81


@pytest.mark.parametrize("frame_num, motion", [(81, 0), (81, 81), (81, 8), (80, 9)])
def test_clip_lengths_must_fit_the_vae_stride(frame_num, motion):
    with pytest.raises(ValueError):
        plan_stream(250, frame_num, motion)
