"""Parity: the LightX2V LoRA merge against upstream's merged state dicts (`lora/`, README §7)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from infinitetalk_engine.infinitetalk.lora import merge_lora

from . import Check

TOLERANCE = 1e-5


def _merge_error(root: Path, scale_name: str) -> float:
    folder = root / "lora"
    base = load_file(folder / "base.safetensors")
    expected = load_file(folder / f"merged_{scale_name}.safetensors")
    expected_changed = json.loads((folder / "meta.json").read_text())[scale_name]["changed_keys"]
    scale = float(scale_name.removeprefix("scale"))

    merged, report = merge_lora(base, load_file(folder / "lora.safetensors"), scale)
    if sorted(report.changed) != sorted(expected_changed):
        raise ValueError(f"changed keys differ: ours {report.changed}, upstream {expected_changed}")
    if set(merged) != set(expected):
        raise ValueError(f"merged keys differ from upstream's: {sorted(set(merged) ^ set(expected))}")
    return max((merged[key].float() - expected[key].float()).abs().max().item() for key in expected)


CHECKS = [
    Check(f"lora merge {scale_name}", TOLERANCE, lambda root, s=scale_name: _merge_error(root, s))
    for scale_name in ("scale1.0", "scale1.2")
]
