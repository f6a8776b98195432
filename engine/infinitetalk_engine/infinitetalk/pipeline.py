"""The streaming sampler: encoded inputs -> video clips, one clip at a time (InfiniteTalk's `generate_infinitetalk`).

    clips = generate_clips(dit, vae, conditioning, SamplerSettings(steps=4, shift=7.0), hooks)
    for clip in clips:                 # ClipFrames: the frames this clip adds, (3, T_new, H, W) in [-1, 1]
        writer.write(to_uint8_frames(clip.frames))

Stages (numbered in `generate_clips`):
1. Plan the clips (sampler/audio_windows.py): clip k covers video frames [k*stride, k*stride + frame_num),
   stride = frame_num - motion_frames, until a clip reaches the audio length (or `max_frames`); audio shorter than
   one clip gives one clip, trimmed.
2. Clip-independent conditioning: `y` = [mask | VAE(reference image + frame_num-1 zero frames)], the first clip's
   motion latent = VAE(reference image), and the null-audio tokens.
3. Per clip: audio windows -> tokens; fresh noise; the denoising loop (guidance passes, Euler step, the clean motion
   latents written back before and after every step); VAE decode; colour matching; emit the new frames; encode the
   last `motion_frames` frames as the next clip's motion latents.

Randomness: one `torch.Generator` on the CPU seeded with `seed` draws, in upstream's order, each clip's noise and
then (clips after the first) one motion-noise tensor before the loop and one after every step. Those motion draws
do not change any value (the motion latents are overwritten with clean ones) but keep the generator in step with
upstream, so clip k's noise equals upstream's for the same seed. Draws happen on the CPU whatever the device, so a
seed gives the same noise on every machine.

Everything here is parameterised (frame_num, motion_frames, steps, shift, scales) so the parity fixture can run the
production loop with its tiny settings. `hooks.trace(name, tensor)` exposes intermediates under the fixture's names.
Reference: ../shared/reference/infinitetalk-engine.md §4, ../shared/parity/README.md §8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .sampler.audio_windows import clip_windows, extend_reverse_tail, plan_stream
from .sampler.color import match_colors
from .sampler.color_on_device import match_colors_on_device
from .sampler.guidance import COND, DROP_AUDIO, DROP_TEXT, UNCOND, Guidance
from .sampler.schedule import euler_step
from .sampler.schedule import timesteps as make_timesteps

LATENT_CHANNELS = 16
VAE_TIME_STRIDE = 4
VAE_SPACE_STRIDE = 8


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample. Production defaults are the LightX2V 4-step path; the parity fixture overrides them."""

    frame_num: int = 81  # frames per clip (1 + 4k)
    motion_frames: int = 9  # frames of the previous clip carried into the next (1 + 4k)
    steps: int = 4
    shift: float = 7.0  # 7 at 480p, 11 at 720p
    text_scale: float = 1.0  # 1: no text guidance (the distilled LoRA path)
    audio_scale: float = 2.0
    audio_guidance_steps: int | None = None  # audio guidance on the first N steps only (None: every step)
    color_correction: float = 1.0  # 0..1 strength of the Lab mean/std match to the reference image
    seed: int = 42
    max_frames: int | None = None  # stop after this many frames (upstream's max_frames_num); None: audio length

    def validate(self) -> None:
        if self.frame_num < 5 or (self.frame_num - 1) % VAE_TIME_STRIDE:
            raise ValueError(f"frame_num must be 1 + 4k (>= 5), got {self.frame_num}")
        if not 1 <= self.motion_frames < self.frame_num or (self.motion_frames - 1) % VAE_TIME_STRIDE:
            raise ValueError(f"motion_frames must be 1 + 4k and below frame_num, got {self.motion_frames}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.audio_guidance_steps is not None and self.audio_guidance_steps < 0:
            raise ValueError(f"audio_guidance_steps must be at least 0, got {self.audio_guidance_steps}")
        if not 0.0 <= self.color_correction <= 1.0:
            raise ValueError(f"color_correction must be in [0, 1], got {self.color_correction}")

    @property
    def latent_frames(self) -> int:
        return (self.frame_num - 1) // VAE_TIME_STRIDE + 1


@dataclass
class Conditioning:
    """The encoded inputs of one job (everything the sampler needs besides the models)."""

    image: torch.Tensor  # (3, H, W) reference image in [-1, 1], already bucket-sized
    context: torch.Tensor  # (L, text_dim) T5 output of the prompt, trimmed
    clip_features: torch.Tensor  # (1, 257, clip_dim) CLIP penultimate tokens of the reference image
    audio: Sequence[torch.Tensor]  # per speaker: (n_frames, layers, hidden) wav2vec features, 25 fps
    ref_target_masks: torch.Tensor  # (3, H/8, W/8) person 1 / person 2 / background masks
    context_negative: torch.Tensor | None = None  # (L', text_dim); needed when text_scale != 1
    # `reference_latents` of `image`, when the caller has them already (jobs that share a portrait, e.g. a batch)
    image_latents: tuple[torch.Tensor, torch.Tensor] | None = None


def reference_latents(vae, image: torch.Tensor, frame_num: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE latents every clip is conditioned on: the still image followed by `frame_num - 1` black frames
    (16, T_lat, h, w), and the image alone, the first clip's motion frame (16, 1, h, w)."""
    image = image.to(device, torch.float32)
    padded = torch.cat([image[:, None], image.new_zeros(3, frame_num - 1, *image.shape[1:])], dim=1)
    return vae.encode(padded).to(device), vae.encode(image[:, None]).to(device)


@dataclass
class ClipFrames:
    index: int  # 0-based clip index
    clips: int  # clips in the whole video
    frames: torch.Tensor  # (3, T_new, H, W) float32 in [-1, 1] on the device: the frames this clip adds


@dataclass
class Hooks:
    """Optional callbacks: clip starts, progress after each step, cancellation before every model pass and decode,
    intermediates for parity."""

    on_clip: Callable[[int, int], None] = lambda clip, clips: None  # a clip starts (0-based index, count)
    on_step: Callable[[int, int, int, int], None] = lambda clip, clips, step, steps: None
    check_cancelled: Callable[[], None] = lambda: None
    trace: Callable[[str, torch.Tensor], None] | None = None

    def record(self, name: str, tensor: torch.Tensor) -> None:
        if self.trace is not None:
            self.trace(name, tensor.detach().float().cpu().clone())  # a copy: the loop edits latents in place


class Denoiser(Protocol):
    """The DiT (models/transformer.py `InfiniteTalkTransformer`)."""

    def project_audio(self, audio_windows: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, x, timestep, text_context, clip_features, y, audio_tokens, ref_target_masks): ...


class LatentCodec(Protocol):
    """The VAE (models/vae.py `WanVae`): (3, T, H, W) in [-1, 1] <-> normalised latents (16, T_lat, H/8, W/8)."""

    def encode(self, video: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latent: torch.Tensor) -> torch.Tensor: ...


# Helpers -------------------------------------------------------------------------------------------------------------


def first_frame_mask(latent_frames: int, height: int, width: int, device) -> torch.Tensor:
    """(4, T_lat, h, w): ones at latent frame 0 (the reference image is known), zeros elsewhere."""
    mask = torch.zeros(VAE_TIME_STRIDE, latent_frames, height, width, device=device)
    mask[:, 0] = 1.0
    return mask


def to_uint8_frames(video: torch.Tensor) -> numpy.ndarray:  # noqa: F821 (numpy only at run time)
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8: clip((x+1)/2*255) truncated, as upstream's writer.
    Converted on the tensor's device, so only bytes cross to the host."""
    frames = ((video.float() + 1) / 2 * 255).clamp(0, 255).to(torch.uint8)
    return frames.permute(1, 2, 3, 0).contiguous().cpu().numpy()


# The sampler ---------------------------------------------------------------------------------------------------------


def generate_clips(
    dit: Denoiser,
    vae: LatentCodec,
    cond: Conditioning,
    settings: SamplerSettings,
    hooks: Hooks | None = None,
    device: torch.device | None = None,
) -> Iterator[ClipFrames]:
    settings.validate()
    hooks = hooks if hooks is not None else Hooks()
    guidance = Guidance(settings.text_scale, settings.audio_scale)
    # After `audio_guidance_steps`, the audio guidance term is left out: one model pass fewer per step.
    audio_steps = settings.steps if settings.audio_guidance_steps is None else settings.audio_guidance_steps
    without_audio = Guidance(settings.text_scale, 1.0, skip_unit_audio=True)
    if any(b in (DROP_TEXT, UNCOND) for b in guidance.branches) and cond.context_negative is None:
        raise ValueError("text_scale != 1 needs the negative prompt's context")
    device = torch.device(device) if device is not None else cond.image.device
    _, height, width = cond.image.shape
    lat_h, lat_w = height // VAE_SPACE_STRIDE, width // VAE_SPACE_STRIDE
    t_lat = settings.latent_frames

    # 1. Plan the clips; the audio of every speaker must cover the same frames.
    lengths = {a.shape[0] for a in cond.audio}
    if len(lengths) != 1:
        raise ValueError(f"speaker audio lengths differ: {sorted(lengths)}")
    audio_frames = lengths.pop()
    plan = plan_stream(
        audio_frames,
        settings.frame_num,
        settings.motion_frames,
        audio_frames if settings.max_frames is None else settings.max_frames,
    )
    clips = len(plan.clips)
    schedule = make_timesteps(settings.steps, settings.shift)
    generator = torch.Generator("cpu").manual_seed(settings.seed)
    draws = 0

    def draw(kind: str, shape) -> torch.Tensor:
        nonlocal draws
        noise = torch.randn(tuple(shape), generator=generator)
        hooks.record(f"randn_{draws:02d}_{kind}", noise)
        draws += 1
        return noise

    # 2. Conditioning shared by every clip (the reference image is a still).
    image = cond.image.to(device, torch.float32)
    encoded, motion = cond.image_latents or reference_latents(vae, image, settings.frame_num, device)
    y = torch.cat([first_frame_mask(t_lat, lat_h, lat_w, device), encoded])  # (20, T_lat, h, w)
    masks = cond.ref_target_masks.to(device)
    audio = list(cond.audio)
    null_tokens = None
    if DROP_AUDIO in guidance.branches or UNCOND in guidance.branches:
        reference_windows = clip_windows(audio[0], 0, settings.frame_num)
        null_tokens = dit.project_audio(torch.zeros_like(reference_windows)[None].to(device))
    contexts = {
        COND: cond.context,
        DROP_TEXT: cond.context_negative,
        UNCOND: cond.context_negative,
        DROP_AUDIO: cond.context,
    }
    produced = 0

    for clip in plan.clips:
        index, first, last = clip.index, clip.index == 0, clip.index == clips - 1
        hooks.on_clip(index, clips)
        # 3a. Audio windows of this clip (the last one reads a mirror-extended tail) -> audio tokens.
        if last:
            audio = [extend_reverse_tail(a, plan.last_end) for a in audio]
        windows = torch.stack([clip_windows(a, clip.start, settings.frame_num) for a in audio])  # (S, F, 5, L, C)
        tokens = dit.project_audio(windows.to(device))
        branch_audio = {COND: tokens, DROP_TEXT: tokens, UNCOND: null_tokens, DROP_AUDIO: null_tokens}
        hooks.record(f"clip{index}_y", y)
        hooks.record(f"clip{index}_audio", windows)

        # 3b. Fresh noise; motion latents (clean) at the front.
        latent = draw("randn", (LATENT_CHANNELS, t_lat, lat_h, lat_w)).to(device)
        m = motion.shape[1]
        if not first:
            draw("randn_like", motion.shape)  # upstream's motion noise: drawn, then overwritten

        # 3c. Denoising loop.
        for step in range(settings.steps):
            t, t_next = schedule[step], schedule[step + 1]
            latent[:, :m] = motion
            hooks.record(f"clip{index}_step{step}_latent_in", latent)
            hooks.record(f"clip{index}_step{step}_t", t.reshape(1))
            preds = {}
            step_guidance = guidance if step < audio_steps else without_audio
            for branch in step_guidance.branches:
                hooks.check_cancelled()  # between passes too: one full-size pass takes seconds
                preds[branch] = dit(latent, t, contexts[branch], cond.clip_features, y, branch_audio[branch], masks).to(
                    device, torch.float32
                )
                hooks.record(f"clip{index}_step{step}_pred_{branch}", preds[branch])
            latent = euler_step(latent, step_guidance.combine(preds), t.to(device), t_next.to(device))
            if not first:
                draw("randn_like", motion.shape)
            latent[:, :m] = motion
            hooks.on_step(index, clips, step, settings.steps)
        hooks.record(f"clip{index}_final_latent", latent)

        # 3d. Decode, match colours to the reference, emit the new frames.
        hooks.check_cancelled()
        video = vae.decode(latent).to(device, torch.float32)  # (3, frame_num, H, W)
        hooks.record(f"clip{index}_decoded", video)
        if settings.color_correction > 0:
            # The same algorithm either way; torch on a GPU is ~1000x faster than skimage on the CPU.
            match = match_colors_on_device if video.device.type == "cuda" else match_colors
            video = match(video, image, settings.color_correction)
        new = video[:, clip.drop :][:, : plan.output_frames - produced]
        produced += new.shape[1]
        yield ClipFrames(index, clips, new)

        # 3e. The next clip starts from this clip's last frames (after colour matching, as upstream).
        if not last:
            motion = vae.encode(video[:, -settings.motion_frames :]).to(device)
