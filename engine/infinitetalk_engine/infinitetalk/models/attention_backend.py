"""Which PyTorch attention kernel the models use (`--engine-option attention=…`, the GPU bench's `--attention`).

`auto` leaves the choice to PyTorch (it takes the fastest kernel that supports the inputs); the others restrict
scaled_dot_product_attention to one backend, so the benchmark can measure each. FlashAttention-3 and SageAttention
are not wired in (neither is installed where this runs); they would be further choices here.
"""

from __future__ import annotations

import contextlib

from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}
ATTENTION_BACKENDS = ("auto", *BACKENDS)


def sdpa_backend(name: str) -> contextlib.AbstractContextManager:
    """A context in which attention uses only backend `name` (`auto`: no restriction)."""
    if name == "auto":
        return contextlib.nullcontext()
    return sdpa_kernel([BACKENDS[name]])
