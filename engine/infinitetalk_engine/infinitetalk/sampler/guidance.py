"""Classifier-free guidance over text and audio: which model passes a step needs, and how they combine.

Branches (each is one DiT call with the same latent and timestep):
  cond       = (prompt,          audio)
  drop_text  = (negative prompt, audio)
  uncond     = (negative prompt, null audio)
  drop_audio = (prompt,          null audio)
where null audio is one all-zero stream (its projection biases still apply).

text_scale != 1 -> three passes:  uncond + s_t*(cond - drop_text) + s_a*(drop_text - uncond)
                   (with s_a == 1 and `skip_unit_audio`: two passes, drop_text + s_t*(cond - drop_text))
text_scale == 1 -> two passes:    drop_audio + s_a*(cond - drop_audio)   (the distilled LoRA path)
both == 1       -> one pass:      cond (the second pass would cancel out)
APG (adaptive projected guidance, arXiv 2410.02416) replaces each difference term by a momentum-averaged,
norm-clamped difference with its component along `cond` removed.
Reference: ../shared/parity/README.md §2 "Guidance formulas".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

COND, DROP_TEXT, UNCOND, DROP_AUDIO = "cond", "drop_text", "uncond", "drop_audio"


def three_pass(
    cond: torch.Tensor, drop_text: torch.Tensor, uncond: torch.Tensor, text_scale: float, audio_scale: float
) -> torch.Tensor:
    return uncond + text_scale * (cond - drop_text) + audio_scale * (drop_text - uncond)


def two_pass(cond: torch.Tensor, drop_audio: torch.Tensor, audio_scale: float) -> torch.Tensor:
    return drop_audio + audio_scale * (cond - drop_audio)


@dataclass
class MomentumBuffer:
    """Running sum `avg <- d + momentum * avg` (starts at 0); one per guidance term, fresh for every clip."""

    momentum: float
    average: torch.Tensor | None = None

    def update(self, value: torch.Tensor) -> torch.Tensor:
        self.average = value if self.average is None else value + self.momentum * self.average
        return self.average


def projected_guidance(
    diff: torch.Tensor, cond: torch.Tensor, buffer: MomentumBuffer | None, norm_threshold: float, eta: float
) -> torch.Tensor:
    """APG of one difference term: momentum, clamp its L2 norm (over C,T,H,W) to `norm_threshold`, then keep the
    part orthogonal to `cond` plus `eta` times the parallel part (projection in float64)."""
    dims = (-1, -2, -3, -4)
    if buffer is not None:
        diff = buffer.update(diff)
    if norm_threshold > 0:
        norm = diff.norm(p=2, dim=dims, keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(diff), norm_threshold / norm)
    d, c = diff.double(), cond.double()
    c_hat = torch.nn.functional.normalize(c, dim=dims)
    parallel = (d * c_hat).sum(dim=dims, keepdim=True) * c_hat
    return (d - parallel).to(diff.dtype) + eta * parallel.to(diff.dtype)


@dataclass
class Guidance:
    """Guidance for one clip: `branches` lists the DiT calls needed per step, `combine` merges their outputs into
    the velocity. Make a new one per clip (APG momentum restarts with every clip, as upstream)."""

    text_scale: float
    audio_scale: float
    use_apg: bool = False
    apg_momentum: float = -0.75
    apg_norm_threshold: float = 55.0
    apg_eta: float = 0.0
    # With audio_scale 1 and text guidance: two passes (cond, drop_text) instead of upstream's three, whose uncond
    # term then cancels (equal up to rounding; used for steps without audio guidance, never by default).
    skip_unit_audio: bool = False
    _text_buffer: MomentumBuffer = field(init=False, repr=False)
    _audio_buffer: MomentumBuffer = field(init=False, repr=False)

    def __post_init__(self):
        self._text_buffer = MomentumBuffer(self.apg_momentum)
        self._audio_buffer = MomentumBuffer(self.apg_momentum)

    @property
    def text_is_unit(self) -> bool:
        return math.isclose(self.text_scale, 1.0)

    @property
    def audio_is_unit(self) -> bool:
        return math.isclose(self.audio_scale, 1.0)

    @property
    def branches(self) -> tuple[str, ...]:
        if not self.text_is_unit and self.skip_unit_audio and self.audio_is_unit and not self.use_apg:
            return (COND, DROP_TEXT)
        if not self.text_is_unit:
            return (COND, DROP_TEXT, UNCOND)
        if self.audio_is_unit:
            return (COND,)
        return (COND, DROP_AUDIO)

    def combine(self, preds: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Model outputs keyed by branch name -> the guided velocity prediction."""
        missing = [name for name in self.branches if name not in preds]
        if missing:
            raise ValueError(f"guidance needs the model outputs {missing}")
        cond = preds[COND]
        if self.branches == (COND,):
            return cond
        if self.use_apg:
            return self._combine_apg(preds)
        if self.branches == (COND, DROP_TEXT):
            return two_pass(cond, preds[DROP_TEXT], self.text_scale)
        if self.text_is_unit:
            return two_pass(cond, preds[DROP_AUDIO], self.audio_scale)
        return three_pass(cond, preds[DROP_TEXT], preds[UNCOND], self.text_scale, self.audio_scale)

    def _combine_apg(self, preds: Mapping[str, torch.Tensor]) -> torch.Tensor:
        cond = preds[COND]

        def term(diff: torch.Tensor, buffer: MomentumBuffer) -> torch.Tensor:
            return projected_guidance(diff, cond, buffer, self.apg_norm_threshold, self.apg_eta)

        if self.text_is_unit:
            return cond + (self.audio_scale - 1) * term(cond - preds[DROP_AUDIO], self._audio_buffer)
        return (
            cond
            + (self.text_scale - 1) * term(cond - preds[DROP_TEXT], self._text_buffer)
            + (self.audio_scale - 1) * term(preds[DROP_TEXT] - preds[UNCOND], self._audio_buffer)
        )
