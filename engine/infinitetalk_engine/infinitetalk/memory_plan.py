"""The planned GPU and pinned host memory of each memory profile at each resolution, computed without a GPU.

Weights are counted exactly: every model is built on the meta device from its real config (the weights folder's
config and tensor headers, or the published full-size configs) and its parameters are counted per role. Activations
are estimated from the shapes with the formulas below; the GPU benchmark prints these planned figures next to the
measured ones (a planned figure is never reported as a measurement).

Profiles (see docs/infinitetalk-engine.md, "Memory profiles"):
- resident: every model on the GPU, DiT and umT5 in bf16, CLIP fp16, VAE and wav2vec2 fp32.
- fp8: the DiT's block linears in fp8 (+ one float32 scale per output row); umT5 in host memory (its linears in
  fp8 too, but for the feed-forward outputs): it encodes
  a prompt the engine has not cached on the GPU when the GPU has room for it then, else on the CPU (so it never
  sets the peak).
- offload: DiT blocks in pinned host memory, two on the GPU at a time (one computing, one arriving); umT5 in host
  memory as in fp8 (it visits the GPU when there is room then); CLIP in host memory, on the GPU only while it
  encodes a portrait; the VAE (in bf16) and wav2vec2 stay on the GPU; the VAE decodes whole frames (not tiled).

Run: `python -m infinitetalk_engine.infinitetalk.memory_plan [--weights DIR]` (or `make memory-plan`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from torch import nn

GIB = 2**30
PROFILES = ("resident", "fp8", "offload")
# The largest bucket (most pixels) of each tier: the worst case of the tier.
RESOLUTIONS = {"480p": (640, 640), "720p": (960, 960)}
FRAMES = 81  # one clip; the sampler holds one clip's latents at a time
CUDA_CONTEXT = 1.0 * GIB  # CUDA context, cuBLAS/cuDNN workspaces and the allocator's rounding, roughly
ADAPTER_PARTS = ("audio_proj.", "audio_cross_attn.", ".norm_x.")
VAE_LIVE_MAPS = 6  # full-resolution decoder feature maps alive at once (input, conv, norm, residual, 2 cached frames)


@dataclass(frozen=True)
class ModelSizes:
    """Parameter counts of every model, by the role memory planning needs."""

    dit_block_linear: int  # weights of the block linears outside the audio adapter (what fp8 quantises)
    dit_block_linear_rows: int  # their output rows (one fp8 scale each)
    dit_block_other: int  # the rest of the blocks: biases, norms, modulation tables
    dit_outside_blocks: int  # patch/text/time/CLIP embeddings, the audio projection, the head
    adapter: int  # the audio adapter's tensors (a second copy for two speakers)
    t5: int
    clip: int
    vae: int
    wav2vec: int
    dim: int
    ffn_dim: int
    num_blocks: int
    vae_base_dim: int

    @classmethod
    def full_size(cls) -> ModelSizes:
        """The published InfiniteTalk / Wan2.1-I2V-14B configs."""
        from transformers import Wav2Vec2Config

        from .models.image_encoder import ClipVisionArgs
        from .models.text_encoder import T5EncoderArgs
        from .models.transformer_config import TransformerConfig
        from .models.vae import VaeArgs

        return cls.count(
            TransformerConfig.infinitetalk_14b(),
            T5EncoderArgs.umt5_xxl(),
            ClipVisionArgs.vit_h_14(),
            VaeArgs.wan21(),
            Wav2Vec2Config(),
        )

    @classmethod
    def from_weights(cls, folder: Path) -> ModelSizes:
        """The configs of a weights folder in the seed's layout (config files and tensor headers only)."""
        from transformers import Wav2Vec2Config

        from .model_set import clip_args, dit_config, t5_args, vae_args
        from .weights import WeightsLayout

        layout = WeightsLayout(folder)
        wav2vec = Wav2Vec2Config.from_json_file(str(layout.wav2vec / "config.json"))
        return cls.count(
            dit_config(layout, wav2vec.num_hidden_layers, wav2vec.hidden_size),
            t5_args(layout.t5),
            clip_args(layout.clip),
            vae_args(layout.vae),
            wav2vec,
        )

    @classmethod
    def count(cls, dit_config, t5_args, clip_args, vae_args, wav2vec_config) -> ModelSizes:
        from transformers import CLIPVisionModel, UMT5EncoderModel, Wav2Vec2Model

        from .loading import parameters_on_meta
        from .models.transformer import InfiniteTalkTransformer, is_adapter

        with parameters_on_meta():
            dit = InfiniteTalkTransformer(dit_config)
            t5 = UMT5EncoderModel(t5_args.to_hf())
            clip = CLIPVisionModel(clip_args.to_hf())
            vae = vae_args.build()
            wav2vec = Wav2Vec2Model(wav2vec_config)
        # What fp8 quantises: the block linears outside the audio adapter (`quantize_blocks_to_fp8`).
        linears = [m for n, m in dit.blocks.named_modules() if type(m) is nn.Linear and not is_adapter(n)]
        linear_weights = sum(m.weight.numel() for m in linears)
        block_params = sum(p.numel() for p in dit.blocks.parameters())
        return cls(
            dit_block_linear=linear_weights,
            dit_block_linear_rows=sum(m.out_features for m in linears),
            dit_block_other=block_params - linear_weights,
            dit_outside_blocks=_params(dit) - block_params,
            adapter=sum(p.numel() for n, p in dit.named_parameters() if any(a in n for a in ADAPTER_PARTS)),
            t5=_params(t5),
            clip=_params(clip),
            vae=_params(vae),
            wav2vec=_params(wav2vec),
            dim=dit_config.dim,
            ffn_dim=dit_config.ffn_dim,
            num_blocks=dit_config.num_layers,
            vae_base_dim=vae_args.base_dim,
        )


@dataclass(frozen=True)
class Plan:
    profile: str
    resolution: str
    peak_vram: float  # bytes
    peak_phase: str  # the phase that sets the peak
    pinned_host: float  # bytes of page-locked host memory the profile needs
    phases: dict[str, float]  # phase -> planned bytes on the GPU


def plan(sizes: ModelSizes, profile: str, resolution: str, two_speakers: bool = False) -> Plan:
    """Planned peak GPU memory (the whole engine) and pinned host memory for one job at `resolution`."""
    if profile not in PROFILES:
        raise ValueError(f"unknown memory profile {profile!r}; expected one of {', '.join(PROFILES)}")
    height, width = RESOLUTIONS[resolution]
    s = sizes
    bf16, fp16, fp32, fp8 = 2, 2, 4, 1
    block_bf16 = (s.dit_block_linear + s.dit_block_other) * bf16
    outside = s.dit_outside_blocks * bf16
    adapters = s.adapter * bf16 if two_speakers else 0  # the second adapter copy
    if profile == "resident":
        dit = block_bf16 + outside + adapters
    elif profile == "fp8":
        dit = s.dit_block_linear * fp8 + s.dit_block_linear_rows * fp32 + s.dit_block_other * bf16 + outside
        dit += adapters  # on the GPU only for a two-speaker job
    else:  # offload: two blocks on the GPU, the rest pinned on the host
        dit = 2 * block_bf16 / s.num_blocks + outside + adapters
    t5, clip, wav2vec = s.t5 * bf16, s.clip * fp16, s.wav2vec * fp32
    vae_bytes = bf16 if profile == "offload" else fp32
    vae = s.vae * vae_bytes
    # What stays on the GPU between jobs: everything in resident; all but umT5 in fp8; VAE and wav2vec2 in offload.
    encoders = vae + wav2vec + (clip if profile != "offload" else 0) + (t5 if profile == "resident" else 0)
    base = dit + encoders

    phases = {
        "audio features": base + _wav2vec_activations(),
        # fp8, offload: umT5 visits the GPU only when it fits in what is free then, so it never raises the peak.
        "prompt": base + _t5_activations(s),
        "image": base + (clip if profile == "offload" else 0) + _vae_encode_activations(s, height, width, vae_bytes),
        "denoising": base + _dit_activations(s, height, width),
        "decoding": base + _vae_decode_activations(s, height, width, vae_bytes),
    }
    phases = {name: value + CUDA_CONTEXT for name, value in phases.items()}
    peak_phase = max(phases, key=phases.__getitem__)
    pinned = block_bf16 if profile == "offload" else 0.0  # every block keeps its host copy
    return Plan(profile, resolution, phases[peak_phase], peak_phase, pinned, phases)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tokens(height: int, width: int) -> int:
    """DiT tokens of one clip: latent frames x (H/8/2) x (W/8/2) (VAE stride 8, patch 2x2)."""
    return (1 + (FRAMES - 1) // 4) * (height // 16) * (width // 16)


def _dit_activations(s: ModelSizes, height: int, width: int) -> float:
    """One guidance pass at a time: the float32 residual stream (4 B/value) plus the larger of the attention
    sublayer (normed input, q, k, v and output in bf16: 5 x 2 B) and the FFN (normed input 2 B, the hidden layer
    before and after GELU: 2 x 2 B x ffn/dim); SDPA's memory-efficient kernels keep attention itself O(tokens)."""
    tokens = _tokens(height, width)
    attention = 5 * 2 * tokens * s.dim
    ffn = 2 * tokens * s.dim + 2 * 2 * tokens * s.ffn_dim
    latents = 16 * (FRAMES // 4 + 1) * (height // 8) * (width // 8) * 4 * 8  # latent, noise, 3 predictions, ...
    return 4 * tokens * s.dim + max(attention, ffn) + latents


def _vae_encode_activations(s: ModelSizes, height: int, width: int, value_bytes: int) -> float:
    """The conditioning clip (the image then zero frames) encoded chunk by chunk: the input video in fp32 and the
    encoder's full-resolution maps for one 4-frame chunk."""
    video = 3 * FRAMES * height * width * 4
    return video + VAE_LIVE_MAPS * s.vae_base_dim * 4 * height * width * value_bytes


def _vae_decode_activations(s: ModelSizes, height: int, width: int, value_bytes: int) -> float:
    """Decoded frame by frame with causal caches: the decoder's last-stage feature maps (base_dim channels, the 4
    frames one latent frame becomes, full resolution) times the maps alive at once, plus the growing output video
    (fp32)."""
    video = 3 * FRAMES * height * width * 4
    return video + VAE_LIVE_MAPS * s.vae_base_dim * 4 * height * width * value_bytes


def _t5_activations(s: ModelSizes) -> float:
    """512 tokens through umT5: a few hidden states and the FFN of one layer (small next to its weights)."""
    return 512 * 4096 * 4 * 8


def _wav2vec_activations() -> float:
    """One window of speech features (the audio encoder runs in windows; see docs)."""
    return 256 * 2**20


def format_table(sizes: ModelSizes, two_speakers: bool = False) -> str:
    lines = [
        "PLANNED memory (estimates from the model shapes; not measurements)",
        f"{'profile':<10} {'resolution':<10} {'peak VRAM GiB':>14} {'peak phase':<15} {'pinned host GiB':>16}",
    ]
    for profile in PROFILES:
        for resolution in RESOLUTIONS:
            p = plan(sizes, profile, resolution, two_speakers)
            lines.append(
                f"{profile:<10} {resolution:<10} {p.peak_vram / GIB:>14.1f} {p.peak_phase:<15} "
                f"{p.pinned_host / GIB:>16.1f}"
            )
    total = (
        sizes.dit_block_linear + sizes.dit_block_other + sizes.dit_outside_blocks + sizes.t5 + sizes.clip + sizes.vae
    )
    lines.append(
        f"parameters: DiT {(sizes.dit_block_linear + sizes.dit_block_other + sizes.dit_outside_blocks) / 1e9:.2f}B, "
        f"umT5 {sizes.t5 / 1e9:.2f}B, CLIP {sizes.clip / 1e9:.2f}B, VAE {sizes.vae / 1e6:.0f}M, "
        f"wav2vec2 {sizes.wav2vec / 1e6:.0f}M (all but wav2vec2: {total / 1e9:.2f}B)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a weights folder in the seed's layout (default: full size)")
    parser.add_argument("--two-speakers", action="store_true", help="plan a two-speaker job")
    args = parser.parse_args(argv)
    sizes = ModelSizes.from_weights(args.weights) if args.weights else ModelSizes.full_size()
    print(format_table(sizes, args.two_speakers))


if __name__ == "__main__":
    main()
