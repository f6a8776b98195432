"""Shared by the parity modules: compare our tensors with fixture tensors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from . import Check

# (fixture folder, the folder's tensors.safetensors) -> our tensors, by name.
Compute = Callable[[Path, Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]


def max_abs_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference; a shape mismatch is a failure with both shapes in the message."""
    if tuple(ours.shape) != tuple(expected.shape):
        raise ValueError(f"shape {tuple(ours.shape)}, fixture {tuple(expected.shape)}")
    return (ours.double().cpu() - expected.double()).abs().max().item()


def tensor_checks(folder: str, compute: Compute, tolerances: Mapping[str, float]) -> list[Check]:
    """One check per tensor name (`"<folder> <name>"`): our tensor from `compute(root / folder, fixture)` against
    the fixture's (`root / folder / "tensors.safetensors"`). `compute` runs once per fixture root."""

    @functools.lru_cache(maxsize=2)
    def run(root: Path) -> tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]:
        fixture = load_file(root / folder / "tensors.safetensors")
        return compute(root / folder, fixture), fixture

    def error(root: Path, name: str) -> float:
        ours, fixture = run(root)
        return max_abs_error(ours[name], fixture[name])

    return [
        Check(f"{folder} {name}", tolerance, functools.partial(error, name=name))
        for name, tolerance in tolerances.items()
    ]
