"""Merging a LightX2V / Kijai-format LoRA into Wan-format DiT weights, exactly as upstream InfiniteTalk does.

Rules (pinned by ../shared/parity/lora):
- Only keys starting with `diffusion_model.` are used; the rest of the key is the Wan parameter path.
- `<p>.lora_down.weight` [r, in] with `<p>.lora_up.weight` [out, r]:  `<p>.weight += (up @ down) * scale`.
- `<p>.diff`:   `<p>.weight += diff * scale`;   `<p>.diff_b`:  `<p>.bias += diff_b * scale`.
- `.alpha` tensors and the rank are ignored (no alpha/rank factor), as upstream.
- Anything else (PEFT `lora_A`/`lora_B`, unprefixed keys, unknown suffixes) is ignored and reported.
The sum is formed in float32 on the base tensor's device and cast back to the base tensor's dtype.

Streaming use (one base tensor at a time, e.g. while reading DiT shards):

    lora = LoraWeights.from_file("lightx2v_lora.safetensors")      # lazy: tensors are read when used
    tensor = lora.merge_into(wan_key, tensor.to("cuda"), scale=1.0)  # no-op for keys the LoRA does not touch
    ...
    lora.unapplied()      # LoRA targets no base key matched (report them)

Whole-dict convenience: `merged, report = merge_lora(base_state_dict, lora, scale)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .loading import TensorFile, WeightsError, weights_error

PREFIX = "diffusion_model."
DOWN, UP, DIFF, DIFF_B, ALPHA = ".lora_down.weight", ".lora_up.weight", ".diff", ".diff_b", ".alpha"


@dataclass(frozen=True)
class LoraTerm:
    """One additive term on a target parameter: `up @ down` (low rank) or a full `diff`."""

    down: str | None = None
    up: str | None = None
    diff: str | None = None


@dataclass
class LoraMergeReport:
    changed: list[str] = field(default_factory=list)  # base keys that received a delta
    ignored: dict[str, str] = field(default_factory=dict)  # LoRA key -> why it was not used
    unapplied: list[str] = field(default_factory=list)  # LoRA targets missing from the base


class LoraWeights:
    """A parsed LoRA file: which Wan parameter gets which terms. Tensors are fetched lazily by name."""

    def __init__(self, keys: list[str], get_tensor: Callable[[str], torch.Tensor]):
        self._get = get_tensor
        self.terms: dict[str, list[LoraTerm]] = {}
        self.ignored: dict[str, str] = {}
        self.applied: set[str] = set()
        key_set = set(keys)
        for key in sorted(keys):
            if not key.startswith(PREFIX):
                self.ignored[key] = f"no '{PREFIX}' prefix"
            elif key.endswith(DOWN):
                base = key[: -len(DOWN)]
                if base + UP in key_set:
                    self._add(base[len(PREFIX) :] + ".weight", LoraTerm(down=key, up=base + UP))
                else:
                    self.ignored[key] = "lora_down without lora_up"
            elif key.endswith(UP):
                if key[: -len(UP)] + DOWN not in key_set:
                    self.ignored[key] = "lora_up without lora_down"
            elif key.endswith(DIFF_B):
                self._add(key[len(PREFIX) : -len(DIFF_B)] + ".bias", LoraTerm(diff=key))
            elif key.endswith(DIFF):
                self._add(key[len(PREFIX) : -len(DIFF)] + ".weight", LoraTerm(diff=key))
            elif key.endswith(ALPHA):
                self.ignored[key] = "alpha is not applied (upstream ignores it)"
            else:
                self.ignored[key] = "unsupported LoRA key format (e.g. PEFT lora_A/lora_B)"

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> LoraWeights:
        return cls(list(state_dict), state_dict.__getitem__)

    @classmethod
    def from_file(cls, path: str | Path) -> LoraWeights:
        """Open a `.safetensors` LoRA; a tensor is read only when a target is merged (the file stays open)."""
        try:
            handle = TensorFile(path)
        except WeightsError as exc:  # missing or corrupt file: name it
            raise weights_error(path, f"not a readable LoRA safetensors file ({exc})") from exc
        return cls(handle.keys(), handle.get)

    def targets(self) -> set[str]:
        """The Wan parameter keys this LoRA changes."""
        return set(self.terms)

    def merge_into(self, key: str, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        """`tensor` (the base value of Wan key `key`) with this LoRA's delta added; the same tensor if none."""
        terms = self.terms.get(key)
        if not terms:
            return tensor
        merged = tensor.float()
        for term in terms:
            merged = merged + self._delta(key, term, tensor).to(merged.device) * scale
        self.applied.add(key)
        return merged.to(tensor.dtype)

    def unapplied(self) -> list[str]:
        """Targets never merged so far (after a full load: LoRA keys with no matching base parameter)."""
        return sorted(set(self.terms) - self.applied)

    def _add(self, target: str, term: LoraTerm) -> None:
        self.terms.setdefault(target, []).append(term)

    def _delta(self, key: str, term: LoraTerm, base: torch.Tensor) -> torch.Tensor:
        device = base.device
        if term.diff is not None:
            delta = self._get(term.diff).to(device=device, dtype=torch.float32)
        else:
            up = self._get(term.up).to(device=device, dtype=torch.float32)
            down = self._get(term.down).to(device=device, dtype=torch.float32)
            if up.ndim != 2 or down.ndim != 2 or up.shape[1] != down.shape[0]:
                raise WeightsError(
                    f"LoRA for {key}: lora_up {tuple(up.shape)} and lora_down "
                    f"{tuple(down.shape)} are not a [out, r] x [r, in] pair"
                )
            delta = up @ down
        if delta.shape != base.shape:
            raise WeightsError(
                f"LoRA for {key}: delta shape {tuple(delta.shape)} does not match the base tensor {tuple(base.shape)}"
            )
        return delta


def merge_lora(
    base: Mapping[str, torch.Tensor], lora: LoraWeights | Mapping[str, torch.Tensor], scale: float
) -> tuple[dict[str, torch.Tensor], LoraMergeReport]:
    """A new dict with every LoRA target merged (untouched tensors are shared, not copied), plus a report."""
    weights = lora if isinstance(lora, LoraWeights) else LoraWeights.from_state_dict(lora)
    merged = {key: weights.merge_into(key, tensor, scale) for key, tensor in base.items()}
    report = LoraMergeReport(
        changed=sorted(weights.targets() & set(base)),
        ignored=dict(weights.ignored),
        unapplied=sorted(weights.targets() - set(base)),
    )
    return merged, report
