"""Parity: the sampler's pure functions and loop bookkeeping (`sampler/`, README §2).

Parameters (steps/shift pairs, strengths, guidance scales, APG settings, loop settings) are read from the fixture's
meta files; only the fixture names are fixed here.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.sampler.audio_windows import clip_windows, extend_reverse_tail, plan_stream
from infinitetalk_engine.infinitetalk.sampler.color import match_colors
from infinitetalk_engine.infinitetalk.sampler.guidance import COND, DROP_AUDIO, DROP_TEXT, UNCOND, Guidance
from infinitetalk_engine.infinitetalk.sampler.schedule import NUM_TRAIN_TIMESTEPS, timesteps

from . import Check
from ._compare import max_abs_error

TIMESTEP_TOLERANCE = 1e-3  # README table: float32 values up to 1000
COLOR_TOLERANCE = 1e-5
GUIDANCE_TOLERANCE = 1e-5  # pure float32 arithmetic on O(1) values
LOOP_RUNS = ("three_pass", "two_pass_lora")


@functools.lru_cache(maxsize=2)
def _fixture(root: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    folder = root / "sampler"
    return (
        load_file(folder / "tensors.safetensors"),
        json.loads((folder / "meta.json").read_text()),
        json.loads((folder / "audio_windows_and_loop.json").read_text()),
    )


def _timesteps_error(root: Path) -> float:
    """Every schedule in meta.json, against its tensor, its listed values and its dt/1000 list."""
    tensors, meta, _ = _fixture(root)
    errors = []
    for key, entry in meta["timesteps"].items():
        ours = timesteps(entry["steps"], entry["shift"])
        errors.append(max_abs_error(ours, tensors[f"timesteps_{key}"]))
        errors.append(max_abs_error(ours, torch.tensor(entry["timesteps"])))
        dt = (ours[:-1] - ours[1:]) / NUM_TRAIN_TIMESTEPS
        errors.append(max_abs_error(dt, torch.tensor(entry["dt_over_1000"])) * NUM_TRAIN_TIMESTEPS)
    if not errors:
        raise ValueError("meta.json lists no timestep schedules")
    return max(errors)


def _color_error(root: Path, which: int) -> float:
    tensors, meta, _ = _fixture(root)
    strength = meta["color_match"]["strengths"][which]
    video = tensors["color_src"][0]  # (1, 3, T, H, W) -> (3, T, H, W)
    reference = tensors["color_ref"][0, :, 0]  # (1, 3, 1, H, W) -> (3, H, W)
    expected = tensors[f"color_out_strength{strength:g}"][0]
    return max_abs_error(match_colors(video, reference, strength), expected)


def _cfg_error(root: Path, mode: str) -> float:
    tensors, meta, _ = _fixture(root)
    scales = meta["guidance"]["example_scales"][mode]
    guidance = Guidance(scales["text"], scales["audio"])
    preds = {
        COND: tensors["cfg_cond"],
        DROP_TEXT: tensors["cfg_drop_text"],
        UNCOND: tensors["cfg_uncond"],
        DROP_AUDIO: tensors["cfg_drop_audio"],
    }
    prefix = "cfg_combined_lora" if mode == "two_pass" else "cfg_combined"
    expected = tensors[f"{prefix}_text{scales['text']:g}_audio{scales['audio']:g}"]
    return max_abs_error(guidance.combine({name: preds[name] for name in guidance.branches}), expected)


def _apg_error(root: Path) -> float:
    """Two consecutive steps with one Guidance object, so the momentum buffers carry over as upstream."""
    tensors, meta, _ = _fixture(root)
    apg = meta["apg"]
    guidance = Guidance(
        apg["text_scale"],
        apg["audio_scale"],
        use_apg=True,
        apg_momentum=apg["momentum"],
        apg_norm_threshold=apg["norm_threshold"],
        apg_eta=apg["eta"],
    )
    errors = []
    for step in (0, 1):
        preds = {name: tensors[f"apg_step{step}_{name}"] for name in (COND, DROP_TEXT, UNCOND)}
        errors.append(max_abs_error(guidance.combine(preds), tensors[f"apg_step{step}_noise_pred"]))
    return max(errors)


def _loop_errors(root: Path, run_name: str) -> tuple[float, float]:
    """(bookkeeping error, timestep error) of one recorded loop: clip count, per-clip window index matrices and
    centres, output length, model calls per step and in total, and the timesteps each model call received."""
    _, _, loop = _fixture(root)
    run = loop["runs"][run_name]
    audio_frames = run["output_video_frames"]  # the recorded audio is as long as the trimmed output
    frame_num = len(run["clips"][0]["window_index_matrix"])
    plan = plan_stream(audio_frames, frame_num, motion_frames=_motion_frames(run), max_frames=_max_frames(loop))
    guidance = Guidance(run["text_scale"], run["audio_scale"])
    schedule = timesteps(run["steps"], run["shift"])[:-1]

    counts = [
        (len(plan.clips), run["n_clips"]),
        (plan.output_frames, run["output_video_frames"]),
        (len(guidance.branches), run["calls_per_step"]),
        (len(plan.clips) * run["steps"] * len(guidance.branches), run["model_calls"]),
    ]
    errors = [abs(a - b) for a, b in counts]
    frame_indices = extend_reverse_tail(torch.arange(audio_frames), plan.last_end)  # value == audio frame index
    step_errors = []
    for clip, recorded in zip(plan.clips, run["clips"], strict=True):
        windows = clip_windows(frame_indices, clip.start, frame_num)  # (frame_num, 5)
        errors.append(max_abs_error(windows, torch.tensor(recorded["window_index_matrix"])))
        errors.append(abs(windows[0, 2].item() - recorded["first_center"]))
        errors.append(abs(windows[-1, 2].item() - recorded["last_center"]))
        step_errors.append(max_abs_error(schedule, torch.tensor(recorded["timesteps"])))
    return float(max(errors)), max(step_errors)


def _motion_frames(run: dict) -> int:
    """Clip 1's first centre is `frame_num - motion_frames` (the recorded loop used the CLI default, 9)."""
    return len(run["clips"][0]["window_index_matrix"]) - run["clips"][1]["first_center"]


def _max_frames(loop: dict) -> int:
    """The note records the streaming limit as `max_frames_num=N`."""
    return int(re.search(r"max_frames_num=(\d+)", loop["note"]).group(1))


CHECKS = [
    Check("sampler timesteps (every schedule)", TIMESTEP_TOLERANCE, _timesteps_error),
    Check("sampler color_out strength[0]", COLOR_TOLERANCE, lambda root: _color_error(root, 0)),
    Check("sampler color_out strength[1]", COLOR_TOLERANCE, lambda root: _color_error(root, 1)),
    Check("sampler cfg three_pass", GUIDANCE_TOLERANCE, lambda root: _cfg_error(root, "three_pass")),
    Check("sampler cfg two_pass", GUIDANCE_TOLERANCE, lambda root: _cfg_error(root, "two_pass")),
    Check("sampler apg two steps", GUIDANCE_TOLERANCE, _apg_error),
] + [
    check
    for run in LOOP_RUNS
    for check in (
        Check(f"sampler loop {run} windows+bookkeeping", 0.0, lambda root, r=run: _loop_errors(root, r)[0]),
        Check(f"sampler loop {run} timesteps", TIMESTEP_TOLERANCE, lambda root, r=run: _loop_errors(root, r)[1]),
    )
]
