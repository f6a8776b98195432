"""The one weight-loading stack: build a model without memory, then fill it one tensor at a time, strictly.

Every model of the infinitetalk engine (DiT, umT5, CLIP, VAE, wav2vec2) loads through here, in production, in the
parity checks and in the tests. The official loader reads every shard into one dict (>100 GB of host RAM for the
14B DiT). Here:

1. `parameters_on_meta()`: build the module with its parameters on the meta device (no memory, no random init);
   buffers that are computed in `__init__` (RoPE tables, position ids, ...) stay real.
2. `TensorFile`: open a `.safetensors` file (plain reads, one tensor at a time: `safetensors_reader.py`), a
   `.pth`/`.pt`/`.bin` file (`torch.load(mmap=True)`, or read whole when it predates the zip format), or an
   in-memory state dict (tests, fixtures); a tensor is read only when asked for.
3. `stream_into()`: for each file key, `convert` maps it to zero or more module tensors (renames, splits, drops);
   each tensor is moved to the device, optionally patched (`transform`: the LoRA delta), cast to its dtype and
   assigned. Only one source tensor is alive on the host at a time, so host RAM stays far below model size.
4. Strict key accounting: a `LoadReport` lists missing module tensors, unexpected file keys, shape mismatches and
   the base keys an adapter overrides; `LoadReport.raise_if_incomplete()` turns problems into a `WeightsError`.
   `load_weights()` is 3 + 4 for the loaders of single-file models.

Errors are plain Python errors: `WeightsError` (a `ValueError`) whose message starts with the file at fault. The
engine maps it to the protocol's `load_failed`.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .safetensors_reader import SafetensorsReader

log = logging.getLogger(__name__)

# A weights file, or a state dict already in memory.
WeightsSource = str | Path | Mapping[str, torch.Tensor]
# (file key, tensor) -> [(module tensor name, tensor), ...]; [] drops the key on purpose; None = unexpected.
Converter = Callable[[str, torch.Tensor], Sequence[tuple[str, torch.Tensor]] | None]
# (file key, tensor already on the device) -> tensor; used for the LoRA delta, applied in the file's key space.
Transform = Callable[[str, torch.Tensor], torch.Tensor]
IN_MEMORY = "<state dict>"
SHOWN_KEYS = 5  # how many key names an error message lists


class WeightsError(ValueError):
    """A weights file (or folder) that is missing, unreadable or does not fit the model. The message names it."""


def weights_error(where: str | Path, why: str) -> WeightsError:
    return WeightsError(f"{where}: {why}")


def identity_converter(key: str, tensor: torch.Tensor):
    return [(key, tensor)]


def peak_host_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# 1. Build without memory -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
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
    """A weights source read lazily. `keys()`, `shape(key)`, `get(key)` (a CPU tensor in the file's dtype)."""

    def __init__(self, source: WeightsSource):
        self._safe: SafetensorsReader | None = None
        self._dict: Mapping[str, torch.Tensor] | None = None
        if not isinstance(source, (str, Path)):  # a state dict in memory: nothing to read
            self.path, self.name, self._dict = None, IN_MEMORY, source
            return
        self.path = Path(source)
        self.name = self.path.name
        if not self.path.is_file():
            raise weights_error(self.path, "missing")
        try:
            if self.path.suffix == ".safetensors":
                self._safe = SafetensorsReader(self.path)
            else:
                self._dict = _torch_load(self.path)
        except Exception as exc:  # truncated, not a tensor file, wrong format: name the file
            raise weights_error(self.path, f"corrupt or unreadable weights file ({exc})") from exc

    @property
    def where(self) -> str:
        """The name used in error messages: the file path, or `<state dict>`."""
        return IN_MEMORY if self.path is None else str(self.path)

    def keys(self) -> list[str]:
        return list(self._safe.keys()) if self._safe is not None else list(self._dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def shape(self, key: str) -> tuple[int, ...]:
        if self._safe is not None:
            return self._safe.shape(key)
        return tuple(self._dict[key].shape)

    def get(self, key: str) -> torch.Tensor:
        try:
            if self._safe is not None:
                return self._safe.read(key)
            if self.path is None:
                return self._dict[key]
            return self._dict[key].clone()  # detach from the mmap so the page cache can be dropped
        except Exception as exc:
            raise weights_error(self.where, f"cannot read tensor {key!r} ({exc})") from exc

    def close(self) -> None:
        if self._safe is not None:
            self._safe.close()
        self._safe = None
        self._dict = None

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        # Pre-zip (torch < 1.6) files cannot be memory-mapped: read them whole.
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ValueError(f"expected a state dict, found {type(loaded).__name__}")
    return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


# 3-4. Stream into a module with strict accounting ----------------------------------------------------------------


@dataclass
class LoadReport:
    name: str
    loaded: int = 0
    dropped: int = 0
    transformed: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # "file: key"
    mismatched: list[str] = field(default_factory=list)  # "file: key -> name has shape ..., the model expects ..."
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

    def raise_if_incomplete(self, files: Sequence[WeightsSource]) -> None:
        """Strict: any missing, unexpected or mis-shaped tensor fails the load, naming the files and keys."""
        problems = []
        if self.missing:
            problems.append(f"missing {len(self.missing)} tensors (e.g. {', '.join(self.missing[:SHOWN_KEYS])})")
        if self.unexpected:
            problems.append(f"unexpected {len(self.unexpected)} keys (e.g. {', '.join(self.unexpected[:SHOWN_KEYS])})")
        if self.mismatched:
            problems.append(f"shape mismatch: {'; '.join(self.mismatched[:3])}")
        if problems:
            raise weights_error(_describe(files), f"{self.name} weights do not match the model: " + "; ".join(problems))


def _describe(files: Sequence[WeightsSource]) -> str:
    """One file's path, the folder of several, or `<state dict>`."""
    paths = [Path(f) for f in files if isinstance(f, (str, Path))]
    if not paths:
        return IN_MEMORY
    return str(paths[0] if len(files) == 1 else paths[0].parent)


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
    return set(module.state_dict(keep_vars=True))


def stream_into(
    module: nn.Module,
    files: Sequence[WeightsSource],
    *,
    name: str,
    device: torch.device | str,
    only_keys: set[str] | None = None,
    place: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    **stream,
) -> LoadReport:
    """Fill `module` (built under `parameters_on_meta`) from `files`, one tensor at a time.

    `stream` holds the other keywords of `stream_tensors` (`dtype` is required): floating tensors are cast to
    `dtype` (None: the file's dtype), or kept in float32 where `keep_fp32(name)`. Later files win: a key present in
    several files is taken from the last one, and the earlier copies are reported as `overridden` (the InfiniteTalk
    adapter is overlaid on the base DiT this way). `transform` is called for file keys in `transform_keys` (or all
    keys when that is None), on the device, in float32. With `only_keys` (file keys), just those are (re)loaded and
    only they are accounted for. `place(target, tensor)` may move each tensor elsewhere before it is assigned (the
    offload profile keeps the DiT's blocks in host memory).
    """
    started = time.perf_counter()
    report = LoadReport(name)
    wanted = expected_tensors(module)
    assigned: set[str] = set()
    for file_name, key, target, value in stream_tensors(
        files, device=device, only_keys=only_keys, report=report, **stream
    ):
        shown = key if target == key else f"{key} -> {target}"
        if target not in wanted:
            report.unexpected.append(f"{file_name}: {shown}")
            continue
        owner, leaf, is_param = _slot(module, target)
        current = owner._parameters[leaf] if is_param else owner._buffers[leaf]
        if tuple(current.shape) != tuple(value.shape):
            report.mismatched.append(
                f"{file_name}: {shown} has shape {list(value.shape)}, the model expects {list(current.shape)}"
            )
            continue
        if not value.is_floating_point():
            value = value.to(current.dtype)
        if place is not None:
            value = place(target, value)
        prefix = target[: -len(leaf)]
        if hasattr(owner, "assign_loaded"):  # a module that keeps what it is given in its own form (Fp8Linear)
            assigned.update(prefix + name for name in owner.assign_loaded(leaf, value))
        elif is_param:
            owner._parameters[leaf] = nn.Parameter(value, requires_grad=False)
            assigned.add(target)
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
    files: Sequence[WeightsSource],
    *,
    device: torch.device | str,
    dtype: torch.dtype | None,
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
    for index, source in enumerate(files):
        with TensorFile(source) as tensor_file:
            for key in tensor_file:
                if key in provider:
                    report.overridden.append(key)
                provider[key] = index
    for index, source in enumerate(files):
        with TensorFile(source) as tensor_file:
            for key in tensor_file:
                if provider[key] != index or (only_keys is not None and key not in only_keys):
                    continue
                source_tensor = tensor_file.get(key)
                if (
                    transform is not None
                    and source_tensor.is_floating_point()
                    and (transform_keys is None or key in transform_keys)
                ):
                    source_tensor = transform(key, source_tensor.to(device, torch.float32))
                    report.transformed += 1
                targets = convert(key, source_tensor)
                if targets is None:
                    report.unexpected.append(f"{tensor_file.name}: {key}")
                    continue
                if not targets:
                    report.dropped += 1
                    continue
                moved: dict[int, torch.Tensor] = {}  # one device copy of a tensor that feeds two names (tied)
                for target, tensor in targets:
                    if id(tensor) not in moved:
                        moved[id(tensor)] = _place(tensor, device, torch.float32 if keep_fp32(target) else dtype)
                    yield tensor_file.name, key, target, moved[id(tensor)]


def _place(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    if tensor.is_floating_point() and dtype is not None:
        return tensor.to(device=device, dtype=dtype).contiguous()
    return tensor.to(device=device).contiguous()


def _materialize_buffers(module: nn.Module, device: torch.device) -> None:
    """Move computed (non-persistent) buffers to the device; parameters are already there."""
    for owner in module.modules():
        for leaf, buffer in list(owner._buffers.items()):
            if buffer is not None and buffer.device.type != "meta" and buffer.device != device:
                owner._buffers[leaf] = buffer.to(device)


def load_weights(
    module: nn.Module,
    source: WeightsSource,
    *,
    name: str,
    convert: Converter = identity_converter,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """`stream_into` from one source, strictly: raises `WeightsError` naming the file unless every tensor fits."""
    stream_into(module, [source], name=name, device=device, dtype=dtype, convert=convert).raise_if_incomplete([source])
    return module
