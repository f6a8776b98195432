"""GPU readiness bench: the full-size InfiniteTalk DiT + Wan VAE with random bf16 weights built directly on the GPU
(no weight files), run through the production streaming sampler (`pipeline.generate_clips`).

    make bench-gpu                                     # resident 2 and 1 passes, offload (480p 640x640, 4 steps)
    python3 bench/gpu_bench.py --size 832x448 --passes 1 --clips 3 --compile --json $OUT/bench.json
    python3 bench/gpu_bench.py --tiny --device cpu     # the same code path on tiny shapes (run by the tests)

On a GPU the results go to `bench/results/<date>-<gpu>-<profile>-<passes>pass.json` (commit them; the README's
performance table shows the latest). Reports model build seconds, seconds per clip (steady state: clips after the
first), GPU-seconds per second of video (a steady clip adds frame_num - motion_frames frames = 2.88 s), the DiT /
VAE / other split, DiT FLOP rate, peak VRAM and peak host RAM, and a library LoRA's switch time and per-forward
cost. Target on one H100: <= 3.5 GPU-s per video-second in bf16. `--profile fp8` stores the block linears in
float8, `--profile offload` streams the DiT's blocks from pinned host memory; `--attention` and `--encode` measure
those options on and off.

On the lent GPU machine (Python 3.12 + torch + transformers, no diffusers): run `bench/fetch_gpu_wheels.sh` here,
carry `.whl`; this script installs those wheels into a temporary folder when diffusers is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "engine"))

import numpy as np  # noqa: E402
import torch  # noqa: E402  (after the path setup)

PASSES = {1: (1.0, 1.0), 2: (1.0, 2.0), 3: (5.0, 4.0)}  # passes -> (text scale, audio scale)


def ensure_carried_packages() -> None:
    """Import diffusers and PyAV, installing the carried wheels (`.whl/`) into a temporary folder if one is missing."""
    try:
        import av  # noqa: F401
        import diffusers  # noqa: F401

        return
    except ImportError:
        pass
    wheels = sorted((REPO / ".whl").glob("*.whl"))
    if not wheels:
        sys.exit("diffusers or PyAV is not installed: run bench/fetch_gpu_wheels.sh and carry .whl (see the docstring)")
    target = tempfile.mkdtemp(prefix="gpu-bench-site-")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--target",
            target,
            *map(str, wheels),
        ],
        check=True,
    )
    sys.path.insert(0, target)
    importlib.invalidate_caches()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke test of the same code path)")
    p.add_argument("--size", default=None, help="HxW (default 640x640; --tiny: 32x48)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default 81; --tiny: 9)")
    p.add_argument("--motion-frames", type=int, default=None, help="overlap (default 9; --tiny: 5)")
    p.add_argument("--steps", type=int, default=None, help="default 4 (--tiny: 2)")
    p.add_argument(
        "--passes",
        type=int,
        choices=sorted(PASSES),
        default=2,
        help="model passes per step: 1 (text=audio=1), 2 (LoRA path, audio 2), 3 (text 5, audio 4)",
    )
    p.add_argument(
        "--clips", type=int, default=None, help="clips to generate, the first one is the warm-up (default 3; --tiny: 2)"
    )
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default=None, help="DiT dtype (default bf16; cpu fp32)")
    p.add_argument("--vae-dtype", choices=["bf16", "fp32"], default="fp32", help="VAE dtype (upstream: fp32)")
    p.add_argument("--color-correction", type=float, default=1.0)
    p.add_argument("--compile", action="store_true", help="torch.compile each DiT block")
    p.add_argument(
        "--profile",
        choices=["resident", "fp8", "offload"],
        default="resident",
        help="fp8: block linears stored as float8 (Fp8Linear); offload: DiT blocks in pinned host memory, streamed",
    )
    p.add_argument("--offload-ahead", type=int, default=1, help="offload: blocks copied ahead of the computing one")
    p.add_argument(
        "--attention", choices=["auto", "flash", "efficient", "cudnn", "math"], default="auto", help="SDPA kernel"
    )
    p.add_argument(
        "--encode",
        choices=["background", "inline"],
        default="background",
        help="H.264-encode each clip on a thread while the next is sampled (as the engine does), or inline",
    )
    p.add_argument("--json", help="also write the results here")
    p.add_argument(
        "--lora-rank", type=int, default=32, help="measure a library LoRA of this rank on every block layer (0: skip)"
    )
    return p.parse_args(argv)


# 1. Models with random weights, built in place on the device -------------------------------------------------------


def random_fill(module: torch.nn.Module, device, dtype, keep_fp32=lambda name: False, seed: int = 0) -> None:
    """Give every meta parameter a random value on `device` (norm weights 1, biases 0, others N(0, 0.02)).
    Memory is allocated once, in the final dtype: no fp32 copy of the 14B model ever exists."""
    generator = torch.Generator(device=device).manual_seed(seed)
    for name, param in list(module.named_parameters()):
        target = torch.float32 if keep_fp32(name) else dtype
        value = torch.empty(param.shape, device=device, dtype=target)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "bias":
            value.zero_()
        elif param.dim() == 1 or leaf in ("gamma",):
            value.fill_(1.0)
        else:
            value.normal_(0.0, 0.02, generator=generator)
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        owner._parameters[attr] = torch.nn.Parameter(value, requires_grad=False)
    module.to(device).eval().requires_grad_(False)  # buffers (RoPE tables) follow


def build_models(args, device, dtype):
    from infinitetalk_engine.infinitetalk.loading import parameters_on_meta
    from infinitetalk_engine.infinitetalk.models.transformer import InfiniteTalkTransformer, keeps_fp32
    from infinitetalk_engine.infinitetalk.models.transformer_config import TransformerConfig
    from infinitetalk_engine.infinitetalk.models.vae import VaeArgs, WanVae

    if args.tiny:
        config = TransformerConfig(
            dim=32,
            ffn_dim=64,
            num_heads=2,
            num_layers=2,
            text_dim=32,
            clip_dim=64,
            audio_channels=32,
            audio_intermediate_dim=32,
            audio_dim=32,
            audio_tokens=8,
        )
        vae_args = dataclasses.replace(VaeArgs.wan21(), base_dim=8)
    else:
        config, vae_args = TransformerConfig.infinitetalk_14b(), VaeArgs.wan21()
    with parameters_on_meta():
        dit = InfiniteTalkTransformer(config)
        vae_model = vae_args.build()
    random_fill(dit, device, dtype, keeps_fp32)
    random_fill(vae_model, device, {"bf16": torch.bfloat16, "fp32": torch.float32}[args.vae_dtype], seed=1)
    if args.compile:
        for block in dit.blocks:
            block.compile()
    return dit, WanVae(vae_model, vae_args), config


# 2. Timing proxies ------------------------------------------------------------------------------------------------


class Timer:
    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, name: str, fn, *a, **k):
        self.sync()
        started = time.perf_counter()
        out = fn(*a, **k)
        self.sync()
        self.seconds[name] += time.perf_counter() - started
        self.calls[name] += 1
        return out

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class TimedDit:
    def __init__(self, dit, timer: Timer):
        self.dit, self.timer = dit, timer
        self.last_call: tuple | None = None  # a forward's inputs, replayed to measure the LoRA hooks' cost

    def project_audio(self, windows):
        return self.timer.timed("audio_projection", self.dit.project_audio, windows)

    def __call__(self, *a, **k):
        self.last_call = (a, k)
        return self.timer.timed("dit_forward", self.dit, *a, **k)


def lora_costs(dit, call: tuple, timer: Timer, rank: int) -> dict:
    """What a library LoRA of `rank` on every linear layer of every block costs: switching it on (updates to the
    device, hooks registered) and off, and one DiT forward with it against one without (same inputs)."""
    from infinitetalk_engine.infinitetalk.lora_library import LibraryLora, RuntimeLoras, Update, linear_shapes

    g = torch.Generator().manual_seed(1)
    updates = {
        name: Update(down=torch.randn(rank, inputs, generator=g) * 0.01, up=torch.randn(out, rank, generator=g) * 0.01)
        for name, (out, inputs) in linear_shapes(dit).items()
        if name.startswith("blocks.")
    }
    lora = LibraryLora("bench", Path("bench.safetensors"), 0, "kijai", updates)
    args, kwargs = call

    def seconds_of(fn) -> float:
        timer.sync()
        started = time.perf_counter()
        with torch.no_grad():
            fn()
        timer.sync()
        return time.perf_counter() - started

    forward = lambda: dit(*args, **kwargs)  # noqa: E731
    plain = min(seconds_of(forward) for _ in range(2))
    hooks = RuntimeLoras(dit, [(lora, 1.0)])
    switch_on = seconds_of(hooks.__enter__)
    with_lora = min(seconds_of(forward) for _ in range(2))
    switch_off = seconds_of(hooks.__exit__)
    return {
        "rank": rank,
        "targets": len(updates),
        "switch_on_seconds": round(switch_on, 4),
        "switch_off_seconds": round(switch_off, 4),
        "forward_seconds_plain": round(plain, 4),
        "forward_seconds_with_lora": round(with_lora, 4),
        "forward_overhead_percent": round(100 * (with_lora - plain) / plain, 1),
    }


class TimedVae:
    def __init__(self, vae, timer: Timer):
        self.vae, self.timer = vae, timer

    def encode(self, video):
        return self.timer.timed("vae_encode", self.vae.encode, video)

    def decode(self, latent):
        return self.timer.timed("vae_decode", self.vae.decode, latent)


def dit_flops(config, tokens: int, text_tokens: int = 512 + 257) -> float:
    """Multiply-adds x 2 of one DiT forward: linear layers on the visual tokens plus self-attention scores/values
    (cross-attention to 769 tokens and the per-frame audio attention are small and ignored)."""
    d, f = config.dim, config.ffn_dim
    linear = tokens * (8 * d * d + 2 * d * f) + text_tokens * 4 * d * d
    attention = 2 * tokens * tokens * d
    return 2.0 * config.num_layers * (linear + attention)


# 3. The run -----------------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    args = parse_args(argv)
    ensure_carried_packages()
    from infinitetalk_engine.infinitetalk.loading import peak_host_rss_gb
    from infinitetalk_engine.infinitetalk.models.attention_backend import sdpa_backend
    from infinitetalk_engine.infinitetalk.pipeline import (
        Conditioning,
        Hooks,
        SamplerSettings,
        generate_clips,
        to_uint8_frames,
    )
    from infinitetalk_engine.media.background_encoder import BackgroundClipEncoder, InlineClipEncoder
    from infinitetalk_engine.media.live_stream import LiveStreamFolder
    from infinitetalk_engine.media.video import Mp4Writer

    device = torch.device(args.device)
    if args.compile and args.profile == "offload":
        sys.exit("--compile and --profile offload do not go together (the engine ignores compile=on in offload)")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA is not available; use --device cpu (with --tiny)")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        args.dtype or ("fp32" if device.type == "cpu" else "bf16")
    ]
    height, width = map(int, (args.size or ("32x48" if args.tiny else "640x640")).lower().split("x"))
    frame_num = args.frames or (9 if args.tiny else 81)
    motion = args.motion_frames or (5 if args.tiny else 9)
    steps = args.steps or (2 if args.tiny else 4)
    args.clips = args.clips or (2 if args.tiny else 3)
    text_scale, audio_scale = PASSES[args.passes]
    torch.backends.cuda.matmul.allow_tf32 = True

    # 1. Build.
    started = time.perf_counter()
    dit, vae, config = build_models(args, device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    build_seconds = time.perf_counter() - started
    params = sum(p.numel() for p in dit.parameters())
    offload_seconds = streamer = None
    if args.profile == "fp8":
        dit.quantize_blocks_to_fp8()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.profile == "offload":
        from infinitetalk_engine.infinitetalk.models.block_offload import BlockStreamer

        started = time.perf_counter()
        streamer = BlockStreamer.install(dit, device, ahead=args.offload_ahead)
        offload_seconds = time.perf_counter() - started
        if device.type == "cuda":
            torch.cuda.empty_cache()

    # 2. Synthetic conditioning for exactly `clips` clips.
    g = torch.Generator().manual_seed(0)
    stride = frame_num - motion
    audio_frames = frame_num + (args.clips - 1) * stride
    cond = Conditioning(
        image=(torch.rand(3, height, width, generator=g) * 2 - 1).to(device),
        context=torch.randn(40, config.text_dim, generator=g).to(device, dtype),
        context_negative=torch.randn(60, config.text_dim, generator=g).to(device, dtype),
        clip_features=torch.randn(1, config.clip_tokens, config.clip_dim, generator=g).to(device, dtype),
        audio=[torch.randn(audio_frames, config.audio_layers, config.audio_channels, generator=g)],
        ref_target_masks=torch.ones(3, height // 8, width // 8, device=device),
    )
    settings = SamplerSettings(
        frame_num=frame_num,
        motion_frames=motion,
        steps=steps,
        shift=7.0,
        text_scale=text_scale,
        audio_scale=audio_scale,
        color_correction=args.color_correction,
        seed=0,
    )

    # 3. Generate, timing each clip and each phase; each clip is encoded into the MP4 and its live segment, as in
    #    the engine, so the time to the first playable segment is measured too.
    timer = Timer(device)
    clip_seconds, phases, first_segment = [], [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    video_frames = audio_frames
    live = LiveStreamFolder(str(out / "live"), on_segment=lambda s: first_segment.append(time.perf_counter()))
    writer = Mp4Writer(str(out / "bench.mp4"), width, height, audio=np.zeros(video_frames * 640, np.float32), live=live)
    sampling_started = clip_started = time.perf_counter()
    timed_dit = TimedDit(dit, timer)
    encoder = (BackgroundClipEncoder if args.encode == "background" else InlineClipEncoder)(writer)
    clips = generate_clips(timed_dit, TimedVae(vae, timer), cond, settings, Hooks(), device)
    with sdpa_backend(args.attention), encoder:
        for clip in clips:
            timer.sync()
            encode_started = time.perf_counter()  # background: only the wait for the previous clip's encoding
            encoder.submit(to_uint8_frames(clip.frames))
            timer.seconds["encode"] += time.perf_counter() - encode_started
            now = time.perf_counter()
            clip_seconds.append(now - clip_started)
            phases.append(dict(timer.seconds))
            timer.reset()
            clip_started = now
            print(
                f"clip {clip.index + 1}/{clip.clips}: {clip_seconds[-1]:.2f} s "
                f"({', '.join(f'{k} {v:.2f}' for k, v in phases[-1].items())})",
                flush=True,
            )
        encoder.finish()

    writer.close()
    shutil.rmtree(out, ignore_errors=True)
    lora = lora_costs(dit, timed_dit.last_call, timer, args.lora_rank) if args.lora_rank else None
    timed_dit.last_call = None

    # 4. Report.
    steady = clip_seconds[1:] or clip_seconds
    per_clip = sum(steady) / len(steady)
    tokens = settings.latent_frames * (height // 16) * (width // 16)
    forwards = steps * args.passes
    dit_seconds = sum(p.get("dit_forward", 0.0) for p in phases[1:] or phases) / len(steady)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "tiny": args.tiny,
        "dtype": str(dtype),
        "vae_dtype": args.vae_dtype,
        "compile": args.compile,
        "memory_profile": args.profile,
        "attention": args.attention,
        "encode": args.encode,
        "offload_ahead": args.offload_ahead if args.profile == "offload" else None,
        "offload_setup_seconds": None if offload_seconds is None else round(offload_seconds, 2),
        # Blocks whose copy had not finished when their turn came: the transfer did not hide behind compute.
        "offload_copy_stall_percent": None
        if streamer is None
        else round(100 * streamer.stalls / max(1, streamer.uses), 1),
        "size": f"{height}x{width}",
        "frames_per_clip": frame_num,
        "motion_frames": motion,
        "steps": steps,
        "passes": args.passes,
        "clips": args.clips,
        "dit_parameters_billion": round(params / 1e9, 3),
        "tokens_per_clip": tokens,
        "build_seconds": round(build_seconds, 2),
        "clip_seconds": [round(s, 3) for s in clip_seconds],
        "seconds_per_clip": round(per_clip, 3),
        "video_seconds_per_clip": stride / 25,
        "gpu_seconds_per_video_second": round(per_clip / (stride / 25), 3),
        "dit_seconds_per_clip": round(dit_seconds, 3),
        "dit_seconds_per_forward": round(dit_seconds / forwards, 4),
        "dit_tflops": round(dit_flops(config, tokens) * forwards / max(dit_seconds, 1e-9) / 1e12, 1),
        "phases_seconds_per_clip": {
            k: round(sum(p.get(k, 0.0) for p in (phases[1:] or phases)) / len(steady), 3)
            for k in sorted({k for p in phases for k in p})
        },
        "first_segment_seconds_from_sampling_start": round(first_segment[0] - sampling_started, 2),
        "peak_vram_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "peak_host_rss_gb": round(peak_host_rss_gb(), 2),
        "target_gpu_seconds_per_video_second": 3.5,
        "library_lora": lora,
    }
    result["other_seconds_per_clip"] = round(per_clip - sum(result["phases_seconds_per_clip"].values()), 3)
    print(json.dumps(result, indent=1))
    result["date"] = time.strftime("%Y-%m-%d")
    result["driver"] = _nvidia_driver() if device.type == "cuda" else None
    destination = args.json or (results_path(result) if device.type == "cuda" else None)
    if destination:
        Path(destination).parent.mkdir(parents=True, exist_ok=True)
        Path(destination).write_text(json.dumps(result, indent=1))
        print(f"written to {destination}")
    return result


def results_path(result: dict) -> Path:
    """Where a GPU run is kept: `bench/results/<date>-<gpu>-<profile>-<passes>pass.json` (committed, shown in the
    README)."""
    gpu = "".join(c if c.isalnum() else "-" for c in result["device"].lower()).strip("-")
    name = f"{result['date']}-{gpu}-{result['memory_profile']}-{result['passes']}pass.json"
    return REPO / "bench" / "results" / name


def _nvidia_driver() -> str | None:
    try:
        query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        return subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    main()
