"""Reading checkpoint files and loading them into modules built without memory (shared by every model loader).

The pattern (gpt-fast's `_load_model`): build the module with its parameters on the meta device, read the file with
`torch.load(mmap=True, weights_only=True)` (or safetensors), rename keys at the edge, then
`load_state_dict(assign=True)` one dict of real tensors. Host RAM then holds at most the file's pages, never a
second randomly initialised copy of the model. Every mismatch is an `EngineError("load_failed")` naming the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Union

import torch
from torch import nn

from ..engines.base import EngineError

StateDictSource = Union[str, Path, Mapping[str, torch.Tensor]]
SHOWN_KEYS = 8  # how many mismatching key names an error message lists


def load_failed(source: str, why: str) -> EngineError:
    return EngineError("load_failed", f"{source}: {why}")


def describe(source: StateDictSource) -> str:
    """The name used in error messages: the file path, or `<state dict>` for an in-memory dict."""
    return str(source) if isinstance(source, (str, Path)) else "<state dict>"


def read_state_dict(source: StateDictSource) -> dict[str, torch.Tensor]:
    """A `{name: tensor}` dict from a `.pth`/`.pt`/`.bin` (memory-mapped) or `.safetensors` file, or a dict as is."""
    if not isinstance(source, (str, Path)):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise load_failed(str(path), "missing")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {key: f.get_tensor(key) for key in f.keys()}
        state = _torch_load(path)
    except Exception as exc:  # corrupt or foreign file: say which one
        raise load_failed(str(path), f"not a readable checkpoint ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise load_failed(str(path), f"expected a state dict, found {type(state).__name__}")
    return state


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # Files written before torch 1.6's zip format cannot be memory-mapped: read them whole.
        return torch.load(path, map_location="cpu", weights_only=True)


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules with parameters on the meta device; buffers stay real (position ids and the like are computed
    in `__init__` and are not in checkpoints)."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param):
        register(module, name, param)
        if param is not None:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def assign_state_dict(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Load `state` (already in the module's key names) with strict key and shape accounting, casting floating
    tensors to `dtype` and moving them to `device` one at a time."""
    expected = module.state_dict(keep_vars=True)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise load_failed(
            source,
            "state dict does not match the model: "
            f"missing {len(missing)} {_first(missing)}, unexpected {len(unexpected)} {_first(unexpected)}",
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise load_failed(
                source,
                f"{key} has shape {tuple(state[key].shape)}, the model expects "
                f"{tuple(tensor.shape)} (wrong config for this file?)",
            )
    ready = {}
    for key in list(state):
        tensor = state.pop(key)
        ready[key] = tensor.to(device=device, dtype=dtype if dtype is not None and tensor.is_floating_point() else None)
    module.load_state_dict(ready, strict=True, assign=True)
    # Buffers built on the CPU follow the weights to their device.
    module.to(device)
    still_meta = [name for name, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if still_meta:
        raise load_failed(source, f"tensors left without values: {_first(still_meta)}")
    return module.eval().requires_grad_(False)


def take_prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries whose key starts with `prefix`, with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def _first(keys: Iterable[str]) -> str:
    keys = list(keys)
    if not keys:
        return ""
    more = f", ... (+{len(keys) - SHOWN_KEYS})" if len(keys) > SHOWN_KEYS else ""
    return "(" + ", ".join(keys[:SHOWN_KEYS]) + more + ")"
