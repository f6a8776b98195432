"""Parity with fp8 weights: the fixture DiT as the fp8 memory profile holds it (bf16 compute, every block linear
outside the audio adapter stored as float8 e4m3 with per-output-channel scales, `Fp8Linear`), run on the CPU
against upstream's fp32 outputs (`dit/`, `pipeline/`). The stated tolerances are loose bounds, justified in
docs/infinitetalk-engine.md.
"""

from __future__ import annotations

from pathlib import Path

from infinitetalk_engine.infinitetalk.models.transformer import InfiniteTalkTransformer

from ._precision import Tolerances, precision_checks
from .bf16 import bf16_model


def fp8_model(root: Path) -> InfiniteTalkTransformer:
    model = bf16_model(root)
    model.quantize_blocks_to_fp8()
    return model


# DiT output: e4m3 keeps 4 significant bits per weight (averaged down in each dot product). The video: as for
# bf16, amplified by guidance, compounding and colour matching (measured max 0.19, mean 0.0042).
CHECKS = precision_checks("fp8", fp8_model, Tolerances(output=1e-1, flips=0.05, video=0.5, video_mean=0.02))
