"""Shared by the parity modules: compare our tensors with fixture tensors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from . import Check

# fixture root -> (our tensors, the fixture's tensors), by name; cached by the module that defines it.
Run = Callable[[Path], tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]]


def max_abs_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference; a shape mismatch is a failure with both shapes in the message."""
    if tuple(ours.shape) != tuple(expected.shape):
        raise ValueError(f"shape {tuple(ours.shape)}, fixture {tuple(expected.shape)}")
    return (ours.double().cpu() - expected.double()).abs().max().item()


def tensor_checks(prefix: str, run: Run, tolerances: Mapping[str, float]) -> list[Check]:
    """One check per tensor name (`"<prefix> <name>"`): our tensor against the fixture's, both from `run(root)`."""

    def error(root: Path, name: str) -> float:
        ours, fixture = run(root)
        return max_abs_error(ours[name], fixture[name])

    return [
        Check(f"{prefix} {name}", tolerance, functools.partial(error, name=name))
        for name, tolerance in tolerances.items()
    ]
