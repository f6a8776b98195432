"""The streaming sampler's loop, with a fake DiT and VAE (the real modules are pinned by `make parity`)."""

import pytest
import torch
import torch.nn.functional as F

from infinitetalk_engine.contract import JobCancelled
from infinitetalk_engine.infinitetalk.pipeline import (
    Conditioning,
    Hooks,
    SamplerSettings,
    generate_clips,
    to_uint8_frames,
)

H = W = 16
LAYERS, WIDTH = 2, 4


class FakeVae:
    """Latent = 16 channels of the 8x8-pooled video at frames 0, 4, 8, ...; decode repeats them back."""

    def encode(self, video):
        assert (video.shape[1] - 1) % 4 == 0
        pooled = F.avg_pool2d(video[:, ::4], 8)  # (3, T_lat, h, w)
        return pooled.repeat(6, 1, 1, 1)[:16].float()

    def decode(self, latent):
        frames = latent[:3].repeat_interleave(4, dim=1)[:, 3:]  # 1 + 4(T_lat-1) frames
        return F.interpolate(frames, scale_factor=8, mode="nearest").clamp(-1, 1)


class FakeDit:
    def __init__(self):
        self.calls = []

    def project_audio(self, windows):
        return windows.mean(dim=(2, 3))[:, ::4, None, :]  # (S, T_lat, 1, WIDTH)

    def __call__(self, x, t, context, clip_features, y, audio_tokens, masks):
        self.calls.append(
            {
                "x": x.clone(),
                "t": float(t),
                "context": context,
                "speakers": audio_tokens.shape[0],
                "audio": audio_tokens.abs().sum().item(),
            }
        )
        return 0.5 * x + context.mean() + audio_tokens.mean()


def conditioning(frames=40, speakers=1):
    g = torch.Generator().manual_seed(0)
    return Conditioning(
        image=torch.rand(3, H, W, generator=g) * 2 - 1,
        context=torch.ones(3, 8),
        context_negative=-torch.ones(2, 8),
        clip_features=torch.zeros(1, 257, 8),
        audio=[torch.randn(frames, LAYERS, WIDTH, generator=g) for _ in range(speakers)],
        ref_target_masks=torch.ones(3, H // 8, W // 8),
    )


def run(settings, cond=None, hooks=None, dit=None):
    dit = dit or FakeDit()
    clips = list(generate_clips(dit, FakeVae(), cond or conditioning(), settings, hooks or Hooks()))
    return clips, dit


SMALL = SamplerSettings(frame_num=9, motion_frames=5, steps=2, audio_scale=1.0, color_correction=0.0)


@pytest.mark.parametrize("text_scale, audio_scale, passes", [(1.0, 1.0, 1), (1.0, 2.0, 2), (5.0, 4.0, 3)])
def test_guidance_scales_decide_the_number_of_model_passes(text_scale, audio_scale, passes):
    settings = SamplerSettings(
        frame_num=9, motion_frames=5, steps=2, text_scale=text_scale, audio_scale=audio_scale, color_correction=0.0
    )
    clips, dit = run(settings, conditioning(frames=9))
    assert len(clips) == 1 and len(dit.calls) == 2 * passes


def test_null_audio_branch_gets_one_all_zero_stream_and_the_prompt():
    settings = SamplerSettings(frame_num=9, motion_frames=5, steps=1, audio_scale=2.0, color_correction=0.0)
    _, dit = run(settings, conditioning(frames=9, speakers=2))
    cond, drop_audio = dit.calls
    assert cond["speakers"] == 2 and cond["audio"] > 0
    assert drop_audio["speakers"] == 1 and drop_audio["audio"] == 0
    assert torch.equal(drop_audio["context"], cond["context"])


def test_long_audio_is_covered_by_overlapping_clips_and_trimmed_to_its_length():
    # stride 4: clips start at 0, 4, 8, ...; 22 frames need 1 + ceil((22 - 9) / 4) = 5 clips.
    clips, _ = run(SMALL, conditioning(frames=22))
    assert [c.index for c in clips] == [0, 1, 2, 3, 4] and all(c.clips == 5 for c in clips)
    assert [c.frames.shape[1] for c in clips] == [9, 4, 4, 4, 1]
    assert sum(c.frames.shape[1] for c in clips) == 22


def test_audio_shorter_than_one_clip_gives_one_trimmed_clip():
    clips, _ = run(SMALL, conditioning(frames=3))
    assert len(clips) == 1 and clips[0].frames.shape == (3, 3, H, W)


def test_every_step_starts_from_the_clean_motion_latents():
    vae = RecordingVae()
    dit = FakeDit()
    clips = list(generate_clips(dit, vae, conditioning(frames=13), SMALL))
    (_, y_latent), (image, first_motion), (last_frames, second_motion) = vae.encoded
    # Clip 0: the reference image's latent in front of every step's input.
    assert image.shape[1] == 1 and all(torch.equal(c["x"][:, :1], first_motion) for c in dit.calls[:2])
    # Clip 1: the latents of clip 0's last 5 output frames (2 latent frames), clean at every step.
    assert torch.equal(last_frames, clips[0].frames[:, -5:])
    assert all(torch.equal(c["x"][:, :2], second_motion) for c in dit.calls[2:])


class RecordingVae(FakeVae):
    def __init__(self):
        self.encoded = []

    def encode(self, video):
        latent = super().encode(video)
        self.encoded.append((video.clone(), latent))
        return latent


def test_progress_is_reported_after_every_step_of_every_clip():
    seen = []
    hooks = Hooks(on_step=lambda clip, clips, step, steps: seen.append((clip, clips, step, steps)))
    run(SMALL, conditioning(frames=13), hooks)
    assert seen == [(0, 2, 0, 2), (0, 2, 1, 2), (1, 2, 0, 2), (1, 2, 1, 2)]


def test_cancel_stops_between_steps():
    steps_done = []

    def check():
        if len(steps_done) == 3:
            raise JobCancelled()

    hooks = Hooks(on_step=lambda *a: steps_done.append(a), check_cancelled=check)
    dit = FakeDit()
    with pytest.raises(JobCancelled):
        run(SMALL, conditioning(frames=40), hooks, dit)
    assert len(steps_done) == 3 and len(dit.calls) == 3


def test_the_seed_decides_the_noise():
    a, _ = run(SMALL, conditioning(frames=13))
    b, _ = run(SMALL, conditioning(frames=13))
    c, _ = run(SamplerSettings(**{**SMALL.__dict__, "seed": 7}), conditioning(frames=13))
    assert all(torch.equal(x.frames, y.frames) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0].frames, c[0].frames)


def test_colour_correction_pulls_frames_towards_the_reference_colours():
    cond = conditioning(frames=9)
    plain, _ = run(SMALL, cond)
    corrected, _ = run(SamplerSettings(**{**SMALL.__dict__, "color_correction": 1.0}), cond)
    reference_mean = cond.image.mean(dim=(1, 2))
    distance = lambda video: (video.mean(dim=(1, 2, 3)) - reference_mean).abs().sum()  # noqa: E731
    assert distance(corrected[0].frames) < distance(plain[0].frames)


def test_three_pass_guidance_needs_the_negative_prompt():
    cond = conditioning(frames=9)
    cond.context_negative = None
    with pytest.raises(ValueError, match="negative prompt"):
        run(SamplerSettings(frame_num=9, motion_frames=5, steps=1, text_scale=5.0), cond)


@pytest.mark.parametrize(
    "field, value",
    [("frame_num", 10), ("motion_frames", 4), ("motion_frames", 9), ("steps", 0), ("color_correction", 1.5)],
)
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError):
        run(SamplerSettings(**{**SMALL.__dict__, field: value}), conditioning(frames=9))


def test_uint8_frames_truncate_like_upstream():
    video = torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0, 1.5]).view(3, 1, 1, 2)
    frames = to_uint8_frames(video)
    assert frames.shape == (1, 1, 2, 3)
    assert frames.reshape(-1).tolist() == [0, 127, 255, 0, 254, 255]


# Colour matching on the device (what a GPU runs) -------------------------------------------------------------------


def test_colour_matching_on_device_matches_the_upstream_fixture():
    from parity import default_fixture_root
    from safetensors.torch import load_file

    from infinitetalk_engine.infinitetalk.sampler.color_on_device import match_colors_on_device

    fixture = load_file(default_fixture_root() / "sampler" / "tensors.safetensors")
    src, ref = fixture["color_src"][0], fixture["color_ref"][0, :, 0]
    for strength, name in ((1.0, "color_out_strength1"), (0.5, "color_out_strength0.5")):
        ours = match_colors_on_device(src, ref, strength)
        assert (ours - fixture[name][0]).abs().max() <= 1e-5


def test_colour_matching_on_device_agrees_with_the_cpu_version_and_chunks_frames():
    from infinitetalk_engine.infinitetalk.sampler.color import match_colors
    from infinitetalk_engine.infinitetalk.sampler.color_on_device import CHUNK_FRAMES, match_colors_on_device

    g = torch.Generator().manual_seed(1)
    video = torch.rand(3, CHUNK_FRAMES + 3, 16, 16, generator=g) * 2 - 1
    video[:, 2] = 0.25  # a flat frame: its channels become the reference means
    reference = torch.rand(3, 16, 16, generator=g) * 2 - 1
    ours, cpu = match_colors_on_device(video, reference, 0.7), match_colors(video, reference, 0.7)
    textured = [t for t in range(video.shape[1]) if t != 2]
    # The CPU version rounds through float32 NumPy arrays; the device version stays in float64.
    assert (ours[:, textured] - cpu[:, textured]).abs().max() < 1e-4
    # A flat frame takes the reference's mean colour (rounding noise must not count as texture).
    flat = ours[:, 2].flatten(1)
    assert (flat - flat[:, :1]).abs().max() < 1e-6
