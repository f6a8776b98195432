"""Shared by the reduced-precision parity rows (`bf16.py`, `fp8.py`): one model factory, five checks against
upstream's fp32 outputs: the DiT output of each case, the two-speaker routing choice, and the pipeline's final
video (max and mean abs error)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from . import Check
from . import pipeline as fp32_pipeline
from ._compare import max_abs_error
from .dit import run_dit


@dataclass(frozen=True)
class Tolerances:
    output: float  # DiT output, max abs
    flips: float  # share of visual tokens routed to another speaker than upstream's fp32 choice
    video: float  # pipeline final video, max abs
    video_mean: float  # pipeline final video, mean abs


def expected(root: Path, case: str, name: str) -> torch.Tensor:
    with safe_open(str(root / "dit" / case / "outputs.safetensors"), "pt") as outputs:
        return outputs.get_tensor(name)


def precision_checks(label: str, make_model: Callable[[Path], object], tolerances: Tolerances) -> list[Check]:
    model = functools.lru_cache(maxsize=2)(make_model)

    @functools.lru_cache(maxsize=4)
    def dit(root: Path, case: str) -> dict[str, torch.Tensor]:
        return run_dit(model(root), root, case)

    def output_error(root: Path, case: str) -> float:
        return max_abs_error(dit(root, case)["out"], expected(root, case, "out"))

    def routing_flips(root: Path) -> float:
        ours = dit(root, "two_speakers")["block0_x_ref_attn_map"].argmax(dim=0)
        theirs = expected(root, "two_speakers", "block0_x_ref_attn_map").argmax(dim=0)
        return (ours != theirs).float().mean().item()

    @functools.lru_cache(maxsize=2)
    def video(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
        ours, fixture = fp32_pipeline.run(root, model(root))
        return ours["final_video"], fixture["final_video"]

    def video_mean_error(root: Path) -> float:
        ours, theirs = video(root)
        return (ours - theirs).abs().mean().item()

    return [
        Check(f"{label} dit/single out", tolerances.output, lambda root: output_error(root, "single")),
        Check(f"{label} dit/two_speakers out", tolerances.output, lambda root: output_error(root, "two_speakers")),
        Check(f"{label} two-speaker routing flips (share)", tolerances.flips, routing_flips),
        Check(f"{label} pipeline final video", tolerances.video, lambda root: max_abs_error(*video(root))),
        Check(f"{label} pipeline final video (mean abs)", tolerances.video_mean, video_mean_error),
    ]
