"""`attention=…`: the DiT's attention restricted to one PyTorch kernel; the math kernel (the reference) gives the
same video as PyTorch's own choice within rounding, and a GPU-only kernel on the CPU is a clear load failure."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from in_process_engine import TINY_JOB_OPTIONS, run_tiny_job
from test_lora_library import frames
from tiny_weights import write_tiny_weights

from infinitetalk_engine.contract import EngineError, EngineOptions
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.infinitetalk.models.attention_backend import sdpa_backend


def test_a_restricted_backend_is_the_only_one_used():
    q = torch.randn(1, 2, 8, 4)
    with sdpa_backend("math"):
        math = F.scaled_dot_product_attention(q, q, q)
    with sdpa_backend("auto"):
        auto = F.scaled_dot_product_attention(q, q, q)
    assert torch.allclose(math, auto, atol=1e-5)
    with pytest.raises(RuntimeError), sdpa_backend("cudnn"):  # no such kernel on the CPU
        F.scaled_dot_product_attention(q, q, q)


def test_the_math_kernel_makes_the_video_pytorch_makes_and_gpu_kernels_need_a_gpu(tmp_path):
    folder = write_tiny_weights(tmp_path / "weights")
    videos = []
    for backend in ("auto", "math"):
        engine = InfiniteTalkEngine(
            EngineOptions(weights=str(folder), device="cpu", extra={**TINY_JOB_OPTIONS, "attention": backend})
        )
        engine.load()
        out = tmp_path / backend
        out.mkdir()
        videos.append(frames(run_tiny_job(engine, out, seed=5).output_path).astype(int))
    assert np.abs(videos[0] - videos[1]).mean() < 1.0
    with pytest.raises(EngineError, match="needs a CUDA GPU"):
        InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra={"attention": "cudnn"}))
    with pytest.raises(EngineError, match="attention must be one of"):
        InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra={"attention": "sage"}))
