"""Streaming weight loading: build a model without memory, then fill it one tensor at a time.

The official loader reads every shard into one dict (>100 GB of host RAM for the 14B DiT). Here:

1. `parameters_on_meta()`: build the module with its parameters on the meta device (no memory, no random init);
   buffers that are computed in `__init__` (RoPE tables, ...) stay real.
2. `TensorFile`: open a `.safetensors` (plain reads, one tensor at a time: `safetensors_reader.py`) or `.pth`
   (`torch.load(mmap=True)`) file; a tensor is read only when asked for.
3. `stream_into()`: for each file key, `convert` maps it to zero or more module tensors (renames, splits, drops);
   each tensor is moved to the device, optionally patched (`transform`: the LoRA delta), cast to its dtype and
   assigned. Only one source tensor is alive on the host at a time, so host RAM stays far below model size.
4. Strict key accounting: a `LoadReport` lists missing module tensors, unexpected file keys, shape mismatches and
   the base keys an adapter overrides; `LoadReport.raise_if_incomplete()` turns problems into `load_failed`.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .safetensors_reader import SafetensorsReader
from .weights import load_failed

log = logging.getLogger(__name__)

# (file key, tensor) -> [(module tensor name, tensor), ...]; [] drops the key on purpose; None = unexpected.
Converter = Callable[[str, torch.Tensor], Sequence[tuple[str, torch.Tensor]] | None]
# (file key, tensor already on the device) -> tensor; used for the LoRA delta, applied in the file's key space.
Transform = Callable[[str, torch.Tensor], torch.Tensor]


def identity_converter(key: str, tensor: torch.Tensor):
    return [(key, tensor)]


def peak_host_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# 1. Build without memory -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def parameters_on_meta():
    """Inside this block every new `nn.Parameter` lives on the meta device; buffers are created as usual.

    Initialisers (`reset_parameters`, `post_init`) then run on meta tensors and cost nothing; `stream_into` later
    assigns real tensors.
    """
    original = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = original


# 2. Files -----------------------------------------------------------------------------------------------------------


class TensorFile:
    """A weights file read lazily. `keys()`, `shape(key)`, `get(key)` (a CPU tensor in the file's dtype)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise load_failed(self.path, "missing")
        try:
            if self.path.suffix == ".safetensors":
                self._safe = SafetensorsReader(self.path)
                self._dict = None
            else:
                self._safe = None
                try:
                    loaded = torch.load(str(self.path), map_location="cpu", mmap=True, weights_only=True)
                except RuntimeError as exc:
                    if "mmap" not in str(exc):
                        raise
                    # Pre-zip (torch < 1.6) files cannot be memory-mapped: read them whole.
                    loaded = torch.load(str(self.path), map_location="cpu", weights_only=True)
                if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
                    loaded = loaded["state_dict"]
                if not isinstance(loaded, dict):
                    raise ValueError(f"expected a state dict, found {type(loaded).__name__}")
                self._dict = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        except Exception as exc:  # truncated, not a tensor file, wrong format: name the file
            raise load_failed(self.path, f"corrupt or unreadable weights file ({exc})") from exc

    def keys(self) -> list[str]:
        return list(self._safe.keys()) if self._safe is not None else list(self._dict)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._safe is not None:
            return self._safe.shape(key)
        return tuple(self._dict[key].shape)

    def get(self, key: str) -> torch.Tensor:
        try:
            if self._safe is not None:
                return self._safe.read(key)
            return self._dict[key].clone()  # detach from the mmap so the page cache can be dropped
        except Exception as exc:
            raise load_failed(self.path, f"cannot read tensor {key!r} ({exc})") from exc

    def close(self) -> None:
        if self._safe is not None:
            self._safe.close()
        self._safe = None
        self._dict = None

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_all(path: Path) -> dict[str, torch.Tensor]:
    """Small files only (adapters' key lists, LoRA files, VAE): the whole state dict on the host."""
    with TensorFile(path) as f:
        return {k: f.get(k) for k in f.keys()}


# 3-4. Stream into a module with strict accounting ----------------------------------------------------------------


@dataclass
class LoadReport:
    name: str
    loaded: int = 0
    dropped: int = 0
    transformed: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # "file: key"
    mismatched: list[str] = field(default_factory=list)  # "file: key -> name: file shape vs model shape"
    overridden: list[str] = field(default_factory=list)  # base keys replaced by an adapter file
    seconds: float = 0.0
    peak_host_rss_gb: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.name}: {self.loaded} tensors in {self.seconds:.1f}s, {self.dropped} dropped, "
            f"{self.transformed} patched by LoRA, {len(self.overridden)} overridden by adapter, "
            f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"peak host RSS {self.peak_host_rss_gb:.2f} GB"
        )

    def raise_if_incomplete(self, files: Sequence[Path]) -> None:
        """Strict: any missing, unexpected or mis-shaped tensor fails the load, naming the files and keys."""
        problems = []
        if self.missing:
            problems.append(f"missing {len(self.missing)} tensors (e.g. {', '.join(self.missing[:5])})")
        if self.unexpected:
            problems.append(f"unexpected {len(self.unexpected)} keys (e.g. {', '.join(self.unexpected[:5])})")
        if self.mismatched:
            problems.append(f"shape mismatch: {'; '.join(self.mismatched[:3])}")
        if problems:
            where = files[0] if len(files) == 1 else Path(files[0]).parent
            raise load_failed(Path(where), f"{self.name} weights do not match the model: " + "; ".join(problems))


def _slot(module: nn.Module, name: str) -> tuple[nn.Module, str, bool]:
    """The owning submodule of a dotted tensor name, the leaf name, and whether it is a parameter."""
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    if leaf in owner._parameters:
        return owner, leaf, True
    if leaf in owner._buffers:
        return owner, leaf, False
    raise KeyError(name)


def expected_tensors(module: nn.Module) -> set[str]:
    """Parameters and persistent buffers: everything a complete file set must provide."""
    return set(module.state_dict(keep_vars=True).keys())


def stream_into(
    module: nn.Module,
    files: Sequence[Path],
    *,
    name: str,
    device: torch.device | str,
    dtype: torch.dtype,
    keep_fp32: Callable[[str], bool] = lambda _: False,
    convert: Converter = identity_converter,
    transform: Transform | None = None,
    transform_keys: set[str] | None = None,
    only_keys: set[str] | None = None,
) -> LoadReport:
    """Fill `module` (built under `parameters_on_meta`) from `files`, one tensor at a time.

    Later files win: a key present in several files is taken from the last one, and the earlier copies are
    reported as `overridden` (the InfiniteTalk adapter is overlaid on the base DiT this way). `transform` is called
    for file keys in `transform_keys` (or all keys when that is None), on the device, in float32. With `only_keys`
    (file keys), just those are (re)loaded and only they are accounted for.
    """
    started = time.perf_counter()
    report = LoadReport(name)
    wanted = expected_tensors(module)
    assigned: set[str] = set()
    for file_name, key, target, value in stream_tensors(
        files,
        device=device,
        dtype=dtype,
        keep_fp32=keep_fp32,
        convert=convert,
        transform=transform,
        transform_keys=transform_keys,
        only_keys=only_keys,
        report=report,
    ):
        if target not in wanted:
            shown = key if target == key else f"{key} -> {target}"
            report.unexpected.append(f"{file_name}: {shown}")
            continue
        owner, leaf, is_param = _slot(module, target)
        current = owner._parameters[leaf] if is_param else owner._buffers[leaf]
        if tuple(current.shape) != tuple(value.shape):
            report.mismatched.append(
                f"{file_name}: {key} -> {target}: file {list(value.shape)} vs model {list(current.shape)}"
            )
            continue
        if not value.is_floating_point():
            value = value.to(current.dtype)
        if is_param:
            owner._parameters[leaf] = nn.Parameter(value, requires_grad=False)
        else:
            owner._buffers[leaf] = value
        assigned.add(target)
        report.loaded += 1

    if only_keys is None:
        report.missing = sorted(wanted - assigned)
    _materialize_buffers(module, torch.device(device))
    module.eval().requires_grad_(False)
    report.seconds = time.perf_counter() - started
    report.peak_host_rss_gb = peak_host_rss_gb()
    for key in report.overridden:
        log.info("%s: adapter overrides base key %s", name, key)
    log.info(report.summary())
    return report


def stream_tensors(
    files: Sequence[Path],
    *,
    device: torch.device | str,
    dtype: torch.dtype,
    keep_fp32: Callable[[str], bool] = lambda _: False,
    convert: Converter = identity_converter,
    transform: Transform | None = None,
    transform_keys: set[str] | None = None,
    only_keys: set[str] | None = None,
    report: LoadReport | None = None,
) -> Iterator[tuple[str, str, str, torch.Tensor]]:
    """Yield (file name, file key, module tensor name, tensor on the device in its final dtype), one at a time.

    Each file is opened, read key by key and closed before the next, so host memory holds one tensor (plus what
    the OS caches). Keys of earlier files that a later file also has are skipped and listed in `report.overridden`.
    """
    device = torch.device(device)
    report = report if report is not None else LoadReport("tensors")
    provider: dict[str, int] = {}
    for index, path in enumerate(files):
        with TensorFile(path) as tensor_file:
            for key in tensor_file.keys():
                if key in provider:
                    report.overridden.append(key)
                provider[key] = index
    for index, path in enumerate(files):
        with TensorFile(path) as tensor_file:
            for key in tensor_file.keys():
                if provider[key] != index or (only_keys is not None and key not in only_keys):
                    continue
                source = tensor_file.get(key)
                if (
                    transform is not None
                    and source.is_floating_point()
                    and (transform_keys is None or key in transform_keys)
                ):
                    patched = transform(key, source.to(device, torch.float32))
                    report.transformed += 1
                    source = patched
                targets = convert(key, source)
                if targets is None:
                    report.unexpected.append(f"{tensor_file.path.name}: {key}")
                    continue
                if not targets:
                    report.dropped += 1
                    continue
                for target, tensor in targets:
                    if tensor.is_floating_point():
                        tensor = tensor.to(device=device, dtype=torch.float32 if keep_fp32(target) else dtype)
                    else:
                        tensor = tensor.to(device=device)
                    yield tensor_file.path.name, key, target, tensor.contiguous()


def _materialize_buffers(module: nn.Module, device: torch.device) -> None:
    """Move computed (non-persistent) buffers to the device; parameters are already there."""
    for owner in module.modules():
        for leaf, buffer in list(owner._buffers.items()):
            if buffer is not None and buffer.device.type != "meta" and buffer.device != device:
                owner._buffers[leaf] = buffer.to(device)


def keep_fp32_by_module_names(module: nn.Module) -> Callable[[str], bool]:
    """The `_keep_in_fp32_modules` convention of diffusers/transformers: tensors under those names stay fp32."""
    names = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())

    def keep(target: str) -> bool:
        parts = target.split(".")
        return any(n in parts for n in names)

    return keep


def iter_keys(files: Sequence[Path]) -> Iterator[tuple[Path, str, tuple[int, ...]]]:
    """Every (file, key, shape) without reading tensors: for reports and config inference."""
    for path in files:
        with TensorFile(path) as f:
            for key in f.keys():
                yield Path(path), key, f.shape(key)
