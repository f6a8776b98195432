"""The offload memory profile's block streaming: the DiT's blocks live in (pinned) host memory, and each visits the
GPU only around its own forward.

Before block i runs, its copy must have completed (the compute stream waits on the copy's event); while it runs,
the next `ahead` blocks are copied on a side stream, so a transfer hides behind the previous block's compute. After
block i, its parameters point at their host tensors again and the GPU copies are freed (`record_stream` keeps the
allocator from reusing them before the compute stream is done with them). So at most `ahead + 1` blocks are on the
GPU at once. The first block is fetched when the DiT's forward starts (behind the embeddings), and every block is
released when the forward ends, also by an exception: between forwards, nothing of the blocks is on the GPU, and
the parameters may be re-pointed (the two-speaker adapter switch, a LoRA re-merge) freely.

Parameters are swapped in place (`param.data`), so anything holding the `Parameter` objects sees the block where it
is. Buffers stay where they were loaded (on the device). On a CPU "device" the copies are real copies with no
streams, which is how the schedule and the exactness are tested.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class _InFlight:
    saved: list[tuple[nn.Parameter, torch.Tensor]]  # (parameter, its host tensor)
    event: object | None  # torch.cuda.Event recorded after the copy (None on CPU)


@dataclass
class BlockStreamer:
    blocks: nn.ModuleList
    device: torch.device
    ahead: int = 1
    trace: list[tuple[str, int]] | None = None  # ("copy", i) / ("use", i) / ("release", i), for tests
    uses: int = 0  # blocks run
    stalls: int = 0  # of those, how many had to wait for their copy (the overlap's misses; 0 on CPU)
    _inflight: dict[int, _InFlight] = field(default_factory=dict)
    _stream: object | None = None
    _handles: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ahead < 1:
            raise ValueError("offload needs at least one block copied ahead")
        if self.device.type == "cuda":
            self._stream = torch.cuda.Stream(self.device)

    # MARK: - install

    @classmethod
    def install(cls, dit: nn.Module, device: torch.device, ahead: int = 1, trace=None) -> BlockStreamer:
        """Moves every block parameter to host memory (pinned when CUDA is there) and hooks the blocks and `dit`."""
        streamer = cls(dit.blocks, torch.device(device), ahead, trace)
        for block in dit.blocks:
            for param in block.parameters():
                param.data = to_host(param.data)
        for index, block in enumerate(dit.blocks):
            streamer._handles.append(block.register_forward_pre_hook(lambda _m, _a, i=index: streamer.before(i)))
            streamer._handles.append(block.register_forward_hook(lambda _m, _a, _o, i=index: streamer.after(i)))
        streamer._handles.append(dit.register_forward_pre_hook(lambda _m, _a: streamer.fetch(0)))
        streamer._handles.append(dit.register_forward_hook(lambda *_: streamer.release_all(), always_call=True))
        return streamer

    def remove(self) -> None:
        self.release_all()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # MARK: - schedule

    def fetch(self, index: int) -> None:
        """Starts copying block `index` to the device (no-op when it is there or on its way)."""
        if index >= len(self.blocks) or index in self._inflight:
            return
        saved = [(param, param.data) for param in self.blocks[index].parameters()]
        event = None
        if self._stream is not None:
            self._stream.wait_stream(torch.cuda.current_stream(self.device))  # host tensors may have just changed
            with torch.cuda.stream(self._stream):
                copies = [host.to(self.device, non_blocking=True) for _, host in saved]
                event = torch.cuda.Event()
                event.record(self._stream)
        else:
            copies = [torch.empty_like(host, device=self.device).copy_(host) for _, host in saved]
        for (param, _), copy in zip(saved, copies, strict=True):
            param.data = copy
        self._inflight[index] = _InFlight(saved, event)
        self._log("copy", index)

    def before(self, index: int) -> None:
        """Block `index` is about to run: wait for its copy, then start copying the next ones."""
        self.fetch(index)
        flight = self._inflight[index]
        self.uses += 1
        if flight.event is not None:
            if not flight.event.query():  # the copy is still running: this block waits for it
                self.stalls += 1
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(flight.event)
            for param, _ in flight.saved:
                param.data.record_stream(compute)
        self._log("use", index)
        for ahead in range(index + 1, index + 1 + self.ahead):
            self.fetch(ahead)

    def after(self, index: int) -> None:
        """Block `index` ran: point its parameters at the host tensors again (the GPU copies are freed)."""
        flight = self._inflight.pop(index, None)
        if flight is None:
            return
        for param, host in flight.saved:
            param.data = host
        self._log("release", index)

    def release_all(self) -> None:
        for index in sorted(self._inflight):
            self.after(index)

    @property
    def resident(self) -> list[int]:
        """Blocks on the device or on their way."""
        return sorted(self._inflight)

    def _log(self, what: str, index: int) -> None:
        if self.trace is not None:
            self.trace.append((what, index))


def to_host(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in host memory, page-locked when CUDA is available (so copies to the GPU can run asynchronously)."""
    host = tensor.to("cpu")
    if torch.cuda.is_available():
        host = host.pin_memory()
    return host


def block_bytes(blocks: nn.ModuleList) -> int:
    """Bytes of the blocks' parameters: the pinned host memory the offload profile holds."""
    return sum(p.numel() * p.element_size() for p in blocks.parameters())


@contextlib.contextmanager
def visiting(module: nn.Module, device: torch.device):
    """`module` on `device` for the duration (and back where it was after, its GPU memory returned to the driver);
    nothing moves if it is there already. CLIP (offload) and umT5 (fp8, offload) live in host memory this way, on the
    GPU only while they encode."""
    home = next(module.parameters()).device
    if home == torch.device(device):
        yield module
        return
    module.to(device)
    try:
        yield module
    finally:
        module.to(home)
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
