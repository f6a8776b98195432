"""Style and identity LoRAs of the LoRA library, applied to one job at run time and gone after it.

Both key styles in use are read:
- Kijai / ComfyUI: `diffusion_model.<Wan module>.lora_down.weight` [r, in] and `.lora_up.weight` [out, r], optional
  `.alpha` (then scaled by alpha / r, as ComfyUI does), `.diff` / `.diff_b` full deltas;
- diffusers / PEFT: `transformer.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r] (also with the
  prefixes `base_model.model.` or `diffusion_model.`, or none), module names in diffusers' or Wan's naming.

A library LoRA is never merged into the weights: `RuntimeLoras` adds `scale * factor * (x @ A^T) @ B^T` to the
output of each targeted linear layer through forward hooks, and removes the hooks after the job. So the base
weights are never touched, the next job without LoRAs is bit-identical to one on a fresh engine, and switching
LoRAs costs nothing but the hooks (a low-rank product per targeted layer and step). The 4-step distillation LoRA
stays merged at load (`lora.py`, upstream's rule), as before.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .loading import TensorFile, WeightsError

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.")
SUFFIXES = {
    ".lora_down.weight": "down",
    ".lora_A.weight": "down",
    ".lora_up.weight": "up",
    ".lora_B.weight": "up",
    ".alpha": "alpha",
    ".diff": "diff",
    ".diff_b": "diff_b",
}


@dataclass
class Update:
    """What one LoRA adds to one linear layer (module name in the key's own naming until resolved)."""

    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    alpha: float | None = None
    diff: torch.Tensor | None = None
    diff_b: torch.Tensor | None = None

    @property
    def rank(self) -> int:
        return 0 if self.down is None else int(self.down.shape[0])

    @property
    def factor(self) -> float:
        """alpha / rank when the file gives alpha (ComfyUI's rule), else 1."""
        return 1.0 if self.alpha is None or not self.rank else self.alpha / self.rank


@dataclass
class LibraryLora:
    name: str
    path: Path
    size_bytes: int
    style: str  # "kijai" or "peft"
    updates: dict[str, Update]  # key-naming module -> update
    ignored: dict[str, str] = field(default_factory=dict)  # key -> why it is not used

    @property
    def rank(self) -> int:
        return max((u.rank for u in self.updates.values()), default=0)


def read_library_lora(path: Path) -> LibraryLora:
    """Reads a LoRA file of either style (tensors on the CPU, in float32)."""
    path = Path(path)
    updates: dict[str, Update] = {}
    ignored: dict[str, str] = {}
    styles: set[str] = set()
    try:
        with TensorFile(path) as tensors:
            for key in tensors:
                module, part = _split(key)
                if module is None:
                    ignored[key] = "not a LoRA key of a known style"
                    continue
                styles.add(_style(key))
                value = tensors.get(key).to(torch.float32)
                update = updates.setdefault(module, Update())
                if part == "alpha":
                    update.alpha = float(value.reshape(-1)[0])
                else:
                    setattr(update, part, value)
    except WeightsError as exc:
        raise WeightsError(f"{path.name}: not a readable LoRA safetensors file ({exc})") from exc
    for module, update in list(updates.items()):
        if (update.down is None) != (update.up is None):
            ignored[module] = "a low-rank pair lacks its other half"
            update.down = update.up = None
        if update.down is None and update.diff is None and update.diff_b is None:
            del updates[module]
    if not updates:
        raise WeightsError(f"{path.name}: no LoRA weights in it (keys like …lora_down/lora_up or …lora_A/lora_B)")
    return LibraryLora(path.stem, path, path.stat().st_size, "+".join(sorted(styles)), updates, ignored)


def _style(key: str) -> str:
    return "peft" if ".lora_A." in key or ".lora_B." in key else "kijai"


def _split(key: str) -> tuple[str | None, str | None]:
    for suffix, part in SUFFIXES.items():
        if key.endswith(suffix):
            module = key[: -len(suffix)]
            for prefix in PREFIXES:
                if module.startswith(prefix):
                    module = module[len(prefix) :]
                    break
            return module, part
    return None, None


def resolve(lora: LibraryLora, dit: nn.Module) -> tuple[dict[str, Update], list[str]]:
    """The updates by the DiT's module names, and every reason the LoRA does not fit (empty: it fits)."""
    names, problems = match_targets({m: _shape(u) for m, u in lora.updates.items()}, linear_shapes(dit))
    return {names[module]: update for module, update in lora.updates.items() if module in names}, problems


def match_targets(
    targets: dict[str, tuple[int, int]], shapes: dict[str, tuple[int, int]]
) -> tuple[dict[str, str], list[str]]:
    """Each LoRA target (its key's module name -> (out, in)) matched to a linear layer of the model (`shapes`, by the
    model's names): the matches (target -> layer name), and every reason some do not match (empty: all do)."""
    from .models.transformer_weights import model_key

    names: dict[str, str] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for module, got in targets.items():
        name = module if module in shapes else _model_name(module, model_key)
        expected = shapes.get(name) if name else None
        if expected is None:
            missing.append(module)
        elif got != expected:
            mismatched.append(f"{module} is {got[0]}x{got[1]}, the model's {expected[0]}x{expected[1]}")
        else:
            names[module] = name
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {len(targets)} targets have no layer in this model (e.g. {missing[0]})")
    if mismatched:
        problems.append(
            f"{len(mismatched)} of {len(targets)} targets have other shapes (e.g. {mismatched[0]}): a LoRA for "
            "another model size?"
        )
    return names, problems


def _model_name(module: str, model_key) -> str | None:
    """A Wan-style module name in the model's (diffusers') naming; `None` when it names nothing known."""
    try:
        return model_key(module + ".weight").removesuffix(".weight")
    except (KeyError, ValueError):
        return None


def _shape(update: Update) -> tuple[int, int]:
    if update.down is not None:
        return int(update.up.shape[0]), int(update.down.shape[1])
    if update.diff is not None:
        return tuple(update.diff.shape)
    return (int(update.diff_b.shape[0]), -1)


class RuntimeLoras:
    """LoRAs added to a model's linear layers through forward hooks, for one job (`with RuntimeLoras(...)`)."""

    def __init__(self, dit: nn.Module, loras: Sequence[tuple[LibraryLora, float]]):
        self.dit = dit
        self.loras = list(loras)
        self.handles: list = []

    def __enter__(self) -> RuntimeLoras:
        modules = dict(self.dit.named_modules())
        device = next(self.dit.parameters()).device
        per_module: dict[str, list[tuple[Update, float]]] = {}
        for lora, scale in self.loras:
            resolved, problems = resolve(lora, self.dit)
            if problems:
                raise WeightsError(f"LoRA {lora.name} does not fit this model: {'; '.join(problems)}")
            for name, update in resolved.items():
                per_module.setdefault(name, []).append((_on(update, device), scale * update.factor))
        for name, terms in per_module.items():
            self.handles.append(modules[name].register_forward_hook(_adder(terms)))
        return self

    def __exit__(self, *_exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _on(update: Update, device: torch.device) -> Update:
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Update(move(update.down), move(update.up), update.alpha, move(update.diff), move(update.diff_b))


def _adder(terms: list[tuple[Update, float]]):
    def add(_module, inputs, output):
        x = inputs[0].to(torch.float32)
        delta = torch.zeros_like(output, dtype=torch.float32)
        for update, scale in terms:
            if update.down is not None:
                delta = delta + (x @ update.down.T) @ update.up.T * scale
            if update.diff is not None:
                delta = delta + x @ update.diff.T * scale
            if update.diff_b is not None:
                delta = delta + update.diff_b * scale
        return output + delta.to(output.dtype)

    return add


def library(folder: Path | None) -> list[Path]:
    """The `.safetensors` files of the library folder, by name (none when there is no folder)."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(Path(folder).glob("*.safetensors"))


@dataclass(frozen=True)
class LoraListing:
    """A library file as `hello` lists it (`capabilities.loras`): read from its header only."""

    name: str
    size_bytes: int
    rank: int
    style: str
    targets: int  # layers it changes
    modules: tuple[str, ...]  # which kinds of layer (block index left out), e.g. ("self_attn.q", "ffn.0")
    fits: bool
    reason: str | None  # why it does not fit (or could not be read)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "size_bytes": self.size_bytes,
            "rank": self.rank,
            "style": self.style,
            "targets": self.targets,
            "modules": list(self.modules),
            "fits": self.fits,
            "reason": self.reason,
        }


def list_library(folder: Path | None, model_shapes: dict[str, tuple[int, int]] | None) -> list[LoraListing]:
    """Every file of the library, with whether it fits a model whose linear layers have `model_shapes`
    (module name -> (out, in); `None`: not checked)."""
    return [listing_of(path, model_shapes) for path in library(folder)]


def listing_of(path: Path, model_shapes: dict[str, tuple[int, int]] | None) -> LoraListing:
    """One LoRA file as `hello` lists it, from its header only."""
    try:
        with TensorFile(path) as tensors:
            shapes = {key: tuple(tensors.shape(key)) for key in tensors}
    except WeightsError as exc:
        return LoraListing(path.stem, path.stat().st_size, 0, "?", 0, (), False, f"unreadable: {exc}")
    pairs: dict[str, dict[str, tuple]] = {}
    styles = set()
    for key, shape in shapes.items():
        module, part = _split(key)
        if module is None or part not in ("down", "up"):
            continue
        styles.add(_style(key))
        pairs.setdefault(module, {})[part] = shape
    pairs = {m: p for m, p in pairs.items() if "down" in p and "up" in p}
    rank = max((p["down"][0] for p in pairs.values()), default=0)
    kinds = sorted({".".join(m.split(".")[2:]) if m.startswith("blocks.") else m for m in pairs})
    reason = None if pairs else "no low-rank LoRA weights in it"
    if pairs and model_shapes is not None:
        _, problems = match_targets({m: (p["up"][0], p["down"][1]) for m, p in pairs.items()}, model_shapes)
        reason = "; ".join(problems) or None
    return LoraListing(
        path.stem,
        path.stat().st_size,
        int(rank),
        "+".join(sorted(styles)) or "?",
        len(pairs),
        tuple(kinds),
        reason is None,
        reason,
    )


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def add_to_library(source: Path, folder: Path, name: str, model_shapes: dict[str, tuple[int, int]]) -> LoraListing:
    """Checks the LoRA file `source` (readable, LoRA keys of a known style, every target a layer of the model with
    its shape) and copies it into `folder` as `<name>.safetensors`, never over an existing file. Raises `LoraRefused`
    and leaves the library as it was when anything is wrong."""
    if not NAME_PATTERN.fullmatch(name) or name.endswith(".safetensors"):
        raise LoraRefused("invalid_lora", f"{name!r} is not a LoRA name (letters, digits, '.', '_', '-'; 64 at most)")
    destination = Path(folder) / f"{name}.safetensors"
    if destination.exists():
        raise LoraRefused("lora_exists", f"the library already has a LoRA named {name}")
    source = Path(source)

    def refused(message: str) -> LoraRefused:  # the upload's temporary path is no business of the client's
        return LoraRefused("invalid_lora", message.replace(str(source), name).replace(source.name, name))

    listing = listing_of(source, model_shapes)
    if not listing.fits:
        raise refused(f"{name} does not fit this model: {listing.reason}")
    try:
        read_library_lora(source)  # every tensor's bytes, not only the header
    except WeightsError as exc:
        raise refused(str(exc)) from exc
    Path(folder).mkdir(parents=True, exist_ok=True)
    partial = Path(folder) / f".{name}.{os.getpid()}.partial"
    try:
        shutil.copyfile(source, partial)
        os.link(partial, destination)  # unlike a rename, fails when the name was taken meanwhile
    except FileExistsError as exc:
        raise LoraRefused("lora_exists", f"the library already has a LoRA named {name}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return replace(listing, name=name, size_bytes=destination.stat().st_size)


class LoraRefused(Exception):
    """Why a LoRA was not added to the library (`code` as the protocol's `lora_refused`)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(out, in) of every linear layer (works on a model built on the meta device)."""
    return {
        name: (m.out_features, m.in_features)
        for name, m in model.named_modules()
        if hasattr(m, "in_features") and hasattr(m, "out_features")
    }
