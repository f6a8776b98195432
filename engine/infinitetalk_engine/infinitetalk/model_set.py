"""Every model of the infinitetalk engine, loaded once from the seed's `weights/` folder and kept resident.

    models = load_model_set(WeightsLayout(Path(dir)), ModelSetOptions(device="cuda"))

Sizes come from the files, never from constants: the DiT from `config.json` plus tensor shapes (the text, CLIP and
audio widths are not in Wan's config), T5/CLIP/VAE from tensor shapes (their `.pth` files carry no config), wav2vec2
from its HF `config.json`. That is how the real files are read, and how the tiny test folder is read.

Stages (logged with their time, host RSS and a key report):
1. Tokenizer + umT5 encoder.  2. CLIP visual tower.  3. VAE.  4. wav2vec2.
5. DiT: base shards + single-speaker adapter, streamed one tensor at a time with the LoRA merged on the device.
6. Optionally the two-speaker adapter, held beside the single one; `use_adapter()` swaps parameter references.

Errors are plain: `WeightsError` for a file at fault, `ValueError` for a request the loaded set cannot serve; the
engine maps them to protocol codes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .loading import (
    LoadReport,
    TensorFile,
    parameters_on_meta,
    peak_host_rss_gb,
    stream_into,
    stream_tensors,
    weights_error,
)
from .weights import WeightsLayout

log = logging.getLogger(__name__)

CLIP_HEAD_WIDTH = 80  # ViT-H/14: 1280 wide, 16 heads. Head counts are not stored in the file.


@dataclass(frozen=True)
class ModelSetOptions:
    device: str = "cuda"
    dit_dtype: torch.dtype | None = None  # default: bf16 on GPU, fp32 on CPU
    lora_scale: float = 1.0
    use_lora: bool = True
    two_speakers: bool | None = None  # None: load the multi adapter when the file is there
    vae_dtype: torch.dtype = torch.float32  # upstream runs the VAE in fp32
    # resident: every model on the device; fp8: the DiT's block linears in fp8, umT5 in host memory; offload: the
    # DiT's blocks in pinned host memory, streamed to the device one block ahead, umT5 in host memory (memory_plan.py)
    memory_profile: str = "resident"
    offload_ahead: int = 1  # offload: blocks copied ahead of the one computing

    @property
    def compute_dtype(self) -> torch.dtype:
        if self.dit_dtype is not None:
            return self.dit_dtype
        return torch.float32 if torch.device(self.device).type == "cpu" else torch.bfloat16


@dataclass
class ModelSet:
    tokenizer: object
    t5: torch.nn.Module
    clip: torch.nn.Module
    vae: object  # models.vae.WanVae
    audio: object  # models.audio_encoder.AudioEncoder
    dit: torch.nn.Module  # models.transformer.InfiniteTalkTransformer
    device: torch.device
    layout: WeightsLayout
    options: ModelSetOptions
    lora_scale: float
    reports: list[LoadReport] = field(default_factory=list)
    adapters: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # kind -> module name -> tensor
    active_adapter: str = "single"
    load_seconds: float = 0.0
    offload: object | None = None  # models.block_offload.BlockStreamer in the offload profile

    @property
    def two_speakers(self) -> bool:
        return "multi" in self.adapters

    def use_adapter(self, kind: str) -> None:
        """Point the DiT's audio-adapter parameters at the `single` or `multi` tensors (no copy; in the fp8 profile
        the two-speaker tensors live in host memory and are copied to the device for two-speaker jobs only, and
        freed when the next job has one speaker)."""
        if kind == self.active_adapter:
            return
        if kind not in self.adapters:
            raise ValueError(f"the {kind}-speaker adapter is not loaded")
        tensors = self.adapters[kind]
        if kind == "multi" and self.options.memory_profile == "fp8":
            tensors = {name: tensor.to(self.device) for name, tensor in tensors.items()}
        _assign(self.dit, tensors)
        self.active_adapter = kind

    def set_lora_scale(self, scale: float) -> float:
        """Re-merge the LoRA at `scale`: the LoRA's target tensors are read again from the files and merged
        afresh (exact; takes about as long as reading those tensors). Returns the seconds it took.

        If it fails half-way (a `WeightsError`), `lora_scale` stays NaN: the DiT weights are mixed until the next
        successful merge, which any scale triggers."""
        if not self.options.use_lora:
            raise ValueError("this engine runs without the LoRA (lora=off); lora_scale cannot apply")
        if scale == self.lora_scale:
            return 0.0
        started = time.perf_counter()
        previous = self.active_adapter
        self.use_adapter("single")
        self.lora_scale = math.nan  # until every target is re-merged: a failure half-way leaves mixed weights
        lora = _open_lora(self.layout)
        stream = _dit_stream(self.options, self.device, lora, scale, only_keys=lora.targets())
        _load_dit(self.dit, self.layout, stream).raise_if_incomplete([self.layout.dit_dir])
        self.adapters["single"] = _adapter_params(self.dit, self.adapters["single"].keys())
        if "multi" in self.adapters:
            self.adapters["multi"].update(
                _multi_adapter_home(self.options, _read_adapter(self.dit, self.layout, stream))
            )
        self.lora_scale = scale
        self.use_adapter(previous)
        return time.perf_counter() - started


# Config inference ------------------------------------------------------------------------------------------------


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with TensorFile(path) as f:
        return {key: f.shape(key) for key in f}


def _count_blocks(shapes: dict, pattern: str) -> int:
    found = {int(m.group(1)) for key in shapes if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def t5_args(path: Path):
    from .models.text_encoder import T5EncoderArgs

    s = _shapes(path)
    try:
        vocab, dim = s["token_embedding.weight"]
        buckets, heads = s["blocks.0.pos_embedding.embedding.weight"]
        return T5EncoderArgs(
            vocab=vocab,
            dim=dim,
            dim_attn=s["blocks.0.attn.q.weight"][0],
            dim_ffn=s["blocks.0.ffn.fc1.weight"][0],
            num_heads=heads,
            num_layers=_count_blocks(s, r"blocks\.(\d+)\."),
            num_buckets=buckets,
        )
    except (KeyError, ValueError) as exc:
        raise weights_error(path, f"not a Wan umT5 encoder checkpoint (no {exc})") from exc


def clip_args(path: Path):
    from .models.image_encoder import ClipVisionArgs

    s = _shapes(path)
    try:
        width, _, patch, _ = s["visual.patch_embedding.weight"]
        tokens = s["visual.pos_embedding"][-2]
        return ClipVisionArgs(
            image_size=patch * round((tokens - 1) ** 0.5),
            patch_size=patch,
            dim=width,
            mlp_ratio=s["visual.transformer.0.mlp.0.weight"][0] // width,
            num_heads=max(1, width // CLIP_HEAD_WIDTH),
            num_layers=_count_blocks(s, r"visual\.transformer\.(\d+)\."),
        )
    except (KeyError, ValueError) as exc:
        raise weights_error(path, f"not a Wan CLIP checkpoint (no {exc})") from exc


def vae_args(path: Path):
    """Base width and latent channels from the shapes; the rest is the Wan2.1 VAE's fixed architecture (strict
    loading catches a file that differs)."""
    from .models.vae import VaeArgs

    s = _shapes(path)
    try:
        return dataclasses.replace(VaeArgs.wan21(), base_dim=s["encoder.conv1.weight"][0], z_dim=s["conv2.weight"][0])
    except KeyError as exc:
        raise weights_error(path, f"not a Wan VAE checkpoint (no {exc})") from exc


def dit_config(layout: WeightsLayout, audio_layers: int, audio_channels: int):
    """Wan's config.json, plus the widths only the tensors know: text (T5), CLIP and the audio adapter."""
    from .models.transformer_config import TransformerConfig

    config = TransformerConfig.from_wan_config(layout.read_dit_config())
    base: dict[str, tuple[int, ...]] = {}
    for shard in layout.dit_shards():
        base.update(_shapes(shard))
    adapter = _shapes(layout.adapter(False))
    try:
        intermediate, proj1_in = adapter["audio_proj.proj1.weight"]
        audio_dim = adapter["audio_proj.norm.weight"][0]
        values = {
            "text_dim": base["text_embedding.0.weight"][1],
            "clip_dim": base["img_emb.proj.0.weight"][0],
            "audio_layers": audio_layers,
            "audio_channels": audio_channels,
            "audio_intermediate_dim": intermediate,
            "audio_dim": audio_dim,
            "audio_tokens": adapter["audio_proj.proj3.weight"][0] // audio_dim,
        }
    except KeyError as exc:
        raise weights_error(layout.dit_dir, f"DiT or adapter weights lack {exc}") from exc
    if proj1_in != config.audio_window * audio_layers * audio_channels:
        raise weights_error(
            layout.adapter(False),
            f"audio_proj.proj1 takes {proj1_in} inputs, but wav2vec2 gives "
            f"{audio_layers} layers x {audio_channels} per frame",
        )
    config = dataclasses.replace(config, **values)
    config.validate()
    return config


# Loading ---------------------------------------------------------------------------------------------------------


def load_model_set(layout: WeightsLayout, options: ModelSetOptions) -> ModelSet:
    started = time.perf_counter()
    two_speakers = options.two_speakers
    if two_speakers is None:
        two_speakers = layout.adapter(True).is_file()
    layout.check(two_speakers=two_speakers, use_lora=options.use_lora)  # before the slow imports: fail fast

    from .models.audio_encoder import load_wav2vec2
    from .models.image_encoder import load_clip_visual
    from .models.text_encoder import load_t5_encoder, load_tokenizer
    from .models.vae import load_vae

    device = torch.device(options.device)
    on_gpu = device.type == "cuda"
    dtype = options.compute_dtype

    def stage(name: str, since: float) -> None:
        log.info("loaded %s in %.1f s (peak host RSS %.2f GB)", name, time.perf_counter() - since, peak_host_rss_gb())

    # 1. Tokenizer + umT5 (bf16 like the file on GPU).
    t = time.perf_counter()
    tokenizer = load_tokenizer(layout.tokenizer)
    t5_device = torch.device("cpu") if options.memory_profile in ("fp8", "offload") else device
    t5 = load_t5_encoder(
        layout.t5, t5_args(layout.t5), dtype=torch.bfloat16 if on_gpu else torch.float32, device=t5_device
    )
    if options.memory_profile == "fp8":
        from .models.fp8_linear import Fp8Linear, replace_linears

        # Not the feed-forward output layers: transformers casts their input to `wo.weight.dtype`.
        def to_fp8(linear):
            return Fp8Linear.quantize(linear, linear.weight.dtype)

        quantized = replace_linears(t5.encoder, to_fp8, lambda name: name.endswith(".wo"))
        log.info("memory profile fp8: %d umT5 linears stored as float8 (the feed-forward outputs stay)", quantized)
    stage("umT5", t)
    # 2. CLIP (fp16 on GPU, as upstream's autocast). 3. VAE (fp32 by default). 4. wav2vec2 (fp32).
    t = time.perf_counter()
    clip_device = torch.device("cpu") if options.memory_profile == "offload" else device  # visits when used
    clip = load_clip_visual(
        layout.clip, clip_args(layout.clip), dtype=torch.float16 if on_gpu else torch.float32, device=clip_device
    )
    stage("CLIP", t)
    t = time.perf_counter()
    vae = load_vae(layout.vae, vae_args(layout.vae), dtype=options.vae_dtype, device=device)
    stage("VAE", t)
    t = time.perf_counter()
    audio = load_wav2vec2(layout.wav2vec, dtype=torch.float32, device=device)
    stage("wav2vec2", t)

    # 5. DiT: meta build, then shards + adapter streamed in, LoRA merged per tensor on the device.
    t = time.perf_counter()
    from .models.transformer import InfiniteTalkTransformer

    wav2vec = audio.model.config
    config = dit_config(layout, wav2vec.num_hidden_layers, wav2vec.hidden_size)
    with parameters_on_meta():
        dit = InfiniteTalkTransformer(config)
    if options.memory_profile == "fp8":
        # Each block weight is quantised as it streams in: the bf16 model never exists whole.
        log.info("memory profile fp8: %d DiT block linears stored as float8", dit.expect_fp8_blocks(dtype))
    lora = _open_lora(layout) if options.use_lora else None
    report = _load_dit(dit, layout, _dit_stream(options, device, lora, options.lora_scale))
    report.raise_if_incomplete([layout.dit_dir])
    if lora is not None and lora.unapplied():
        log.warning("LoRA targets with no matching DiT tensor (ignored): %s", ", ".join(lora.unapplied()[:10]))
    stage(f"DiT ({sum(p.numel() for p in dit.parameters()) / 1e9:.2f}B parameters, {dtype})", t)
    models = ModelSet(
        tokenizer, t5, clip, vae, audio, dit, device, layout, options, options.lora_scale, reports=[report]
    )
    adapter_keys = _adapter_names(layout.adapter(False))
    models.adapters["single"] = _adapter_params(dit, adapter_keys)

    # 6. The two-speaker adapter beside it.
    if two_speakers:
        t = time.perf_counter()
        lora = _open_lora(layout) if options.use_lora else None
        multi = _read_adapter(dit, layout, _dit_stream(options, device, lora, options.lora_scale))
        models.adapters["multi"] = _multi_adapter_home(options, multi)
        missing = set(models.adapters["single"]) - set(models.adapters["multi"])
        if missing:
            raise weights_error(
                layout.adapter(True), f"lacks {len(missing)} adapter tensors, e.g. {sorted(missing)[:3]}"
            )
        # Going back to one speaker restores every tensor the two-speaker file replaces, also those the single
        # file does not name (they then come from the DiT's own files, as loaded).
        models.adapters["single"] = _adapter_params(dit, set(adapter_keys) | set(models.adapters["multi"]))
        stage("two-speaker adapter", t)
    if options.memory_profile == "offload":
        from .models.block_offload import BlockStreamer, block_bytes

        models.offload = BlockStreamer.install(dit, device, ahead=options.offload_ahead)
        log.info("memory profile offload: %.1f GB of DiT blocks in host memory", block_bytes(dit.blocks) / 1e9)
    models.load_seconds = time.perf_counter() - started
    return models


def _open_lora(layout: WeightsLayout):
    from .lora import LoraWeights

    return LoraWeights.from_file(layout.lora)


def _dit_stream(options: ModelSetOptions, device, lora, scale: float, only_keys: set[str] | None = None) -> dict:
    """How DiT files are streamed: Wan key names, the compute dtype, the LoRA merged at `scale` on the device."""
    from .models.transformer_weights import dit_stream

    stream = dit_stream(
        device=device,
        dtype=options.compute_dtype,
        transform=None if lora is None else (lambda key, tensor: lora.merge_into(key, tensor, scale)),
        transform_keys=None if lora is None else lora.targets(),
        only_keys=only_keys,
    )
    if options.memory_profile == "offload":  # each block tensor leaves the device as soon as it is loaded (merged)
        from .models.block_offload import to_host

        stream["place"] = lambda target, tensor: to_host(tensor) if target.startswith("blocks.") else tensor
    return stream


def _load_dit(dit, layout: WeightsLayout, stream: dict) -> LoadReport:
    """Base shards, then the single-speaker adapter over them."""
    return stream_into(dit, [*layout.dit_shards(), layout.adapter(False)], name="DiT", **stream)


def _adapter_names(path: Path) -> list[str]:
    from .models.transformer_weights import model_key

    with TensorFile(path) as f:
        return [model_key(key) for key in f]


def _adapter_params(dit, names) -> dict[str, torch.Tensor]:
    params = dict(dit.named_parameters())
    return {name: params[name] for name in names}


def _read_adapter(dit, layout: WeightsLayout, stream: dict) -> dict[str, torch.Tensor]:
    """The multi adapter's tensors (module names), checked against the DiT's parameter names and shapes."""
    params = dict(dit.named_parameters())
    path = layout.adapter(True)
    stream = dict(stream)
    place = stream.pop("place", lambda _name, tensor: tensor)
    tensors: dict[str, torch.Tensor] = {}
    for _, key, name, tensor in stream_tensors([path], **stream):
        if name not in params or params[name].shape != tensor.shape:
            raise weights_error(path, f"{key} does not fit the DiT (shape {tuple(tensor.shape)})")
        tensors[name] = place(name, tensor)
    return tensors


def _multi_adapter_home(options: ModelSetOptions, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fp8 profile keeps the two-speaker adapter in host memory until a two-speaker job needs it (the offload
    profile's `place` already put it there, with the blocks); the resident profile keeps it on the device."""
    if options.memory_profile != "fp8":
        return tensors
    from .models.block_offload import to_host

    return {name: to_host(tensor) for name, tensor in tensors.items()}


def _assign(module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    for name, tensor in tensors.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        owner._parameters[leaf] = (
            tensor if isinstance(tensor, torch.nn.Parameter) else torch.nn.Parameter(tensor, requires_grad=False)
        )


__all__ = [
    "ModelSet",
    "ModelSetOptions",
    "load_model_set",
    "dit_config",
    "t5_args",
    "clip_args",
    "vae_args",
]
