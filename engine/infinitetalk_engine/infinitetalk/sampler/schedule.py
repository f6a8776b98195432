"""Flow-matching timesteps with shift, and the Euler update.

`linspace(1000, 1, steps)` in float32, a final 0, then each t mapped by `t' = s*u/(1+(s-1)*u)` with u = t/1000,
times 1000 (float32 math, as upstream). The last non-zero step is the shifted value of t=1 (6.958 for shift 7), so
the schedule ends with one big jump to 0. Reference: ../shared/parity/README.md §2 "Timestep schedules".
"""

from __future__ import annotations

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000
DEFAULT_SHIFT = {"480p": 7.0, "720p": 11.0}  # upstream CLI defaults per resolution tier


def shift_timesteps(t: torch.Tensor, shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """Apply the shift to timesteps in [0, num_train_timesteps]."""
    u = t / num_train_timesteps
    return shift * u / (1 + (shift - 1) * u) * num_train_timesteps


def timesteps(steps: int, shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """(steps + 1,) float32 schedule from 1000 down to 0; the model is called at the first `steps` values."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    grid = np.linspace(num_train_timesteps, 1, steps, dtype=np.float32)
    t = torch.from_numpy(np.append(grid, np.float32(0.0)))
    return shift_timesteps(t, shift, num_train_timesteps)


def euler_step(
    latent: torch.Tensor,
    velocity: torch.Tensor,
    t: torch.Tensor | float,
    t_next: torch.Tensor | float,
    num_train_timesteps: int = NUM_TRAIN_TIMESTEPS,
) -> torch.Tensor:
    """One Euler step of the flow ODE: the model predicts `noise - x0`, so `x <- x - v * (t - t_next) / 1000`."""
    dt = (t - t_next) / num_train_timesteps
    return latent - velocity * dt
