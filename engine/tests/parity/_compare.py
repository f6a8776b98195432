"""Shared by the parity modules: compare one of our tensors with a fixture tensor."""

from __future__ import annotations

import torch


def max_abs_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    """Max abs difference; a shape mismatch is a failure with both shapes in the message."""
    if tuple(ours.shape) != tuple(expected.shape):
        raise ValueError(f"shape {tuple(ours.shape)}, fixture {tuple(expected.shape)}")
    return (ours.double().cpu() - expected.double()).abs().max().item()
