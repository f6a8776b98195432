"""fp8 weights for the DiT's linear layers: float8 e4m3 with one float32 scale per output channel.

`W ≈ q * scale[:, None]` with `scale = max|W[o, :]| / 448` (448 is e4m3's largest finite value), so every row uses
the format's whole range. The forward dequantises into the compute dtype (bf16 on a GPU: an e4m3 value is exact in
bf16) and runs an ordinary matmul; weights take half the memory of bf16. Numerics against upstream's fp32 outputs:
`engine/tests/parity/fp8.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448.0


class Fp8Linear(nn.Module):
    """A drop-in for `nn.Linear` at inference, its weight stored as fp8 + per-output-channel scales."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, compute_dtype):
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.compute_dtype = compute_dtype
        self.register_buffer("weight", weight)  # (out, in) float8 e4m3
        self.register_buffer("scale", scale)  # (out,) float32
        self.register_buffer("bias", None if bias is None else bias.to(compute_dtype))

    @classmethod
    def quantize(cls, linear: nn.Linear, compute_dtype: torch.dtype) -> Fp8Linear:
        quantized, scale = quantize_rows(linear.weight.detach())
        bias = None if linear.bias is None else linear.bias.detach()
        return cls(quantized, scale, bias, compute_dtype)

    @classmethod
    def placeholder(cls, linear: nn.Linear, compute_dtype: torch.dtype) -> Fp8Linear:
        """An empty (meta) fp8 layer of `linear`'s shape, for the streaming loader to fill (`assign_loaded`)."""
        out_features, in_features = linear.weight.shape
        meta = torch.device("meta")
        bias = None if linear.bias is None else torch.empty(out_features, device=meta)
        return cls(
            torch.empty(out_features, in_features, dtype=FP8, device=meta),
            torch.empty(out_features, device=meta),
            bias,
            compute_dtype,
        )

    def assign_loaded(self, leaf: str, value: torch.Tensor) -> set[str]:
        """Take a loaded tensor of the plain layer (`weight` or `bias`, any float dtype, on its device) in this
        layer's own form: the weight quantised, with its scales. Returns the tensor names it filled."""
        if leaf == "weight":
            self.weight, self.scale = quantize_rows(value)
            return {"weight", "scale"}
        self.bias = value.to(self.compute_dtype)
        return {leaf}

    def dequantized(self) -> torch.Tensor:
        """The weight in the compute dtype: (out, in)."""
        return self.weight.to(self.compute_dtype) * self.scale[:, None].to(self.compute_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.compute_dtype), self.dequantized(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8 e4m3 per-channel"


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) weight -> (fp8 weight, float32 scale per row), computed on the weight's device."""
    weight = weight.float()
    scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / FP8_MAX
    return (weight / scale[:, None]).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def quantize_linears(module: nn.Module, compute_dtype: torch.dtype) -> int:
    """Replace every `nn.Linear` inside `module` by an `Fp8Linear`, in place. Returns how many were replaced."""
    return replace_linears(module, lambda linear: Fp8Linear.quantize(linear, compute_dtype))


def replace_linears(module: nn.Module, make, skip=lambda name: False) -> int:
    """Replace every `nn.Linear` inside `module` (whose qualified name `skip` does not match) by `make(linear)`."""
    replaced = 0
    for parent_name, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            qualified = f"{parent_name}.{name}" if parent_name else name
            if type(child) is nn.Linear and not skip(qualified):
                setattr(parent, name, make(child))
                replaced += 1
    return replaced


def compute_dtype_of(linear: nn.Module) -> torch.dtype:
    """The dtype a linear layer computes in: its weight's, or the dequantisation dtype of an `Fp8Linear`."""
    return linear.compute_dtype if isinstance(linear, Fp8Linear) else linear.weight.dtype
