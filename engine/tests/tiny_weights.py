"""Write tiny random weights in the seed's `weights/` layout, with the released files' key names and formats.

The key lists come from the released checkpoints' structure (Wan DiT + InfiniteTalk adapter, Wan T5, Wan CLIP,
Wan VAE, HF wav2vec2 pretraining layout, Kijai/lightx2v LoRA). `test_tiny_weights_match_fixture_layouts` checks
each generator against the upstream fixture files, so these tiny files look to the engine exactly like real ones,
only smaller: the engine infers every size from `config.json` and tensor shapes, as it does for the real folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from infinitetalk_engine.infinitetalk.models.image_encoder import ClipVisionArgs
from infinitetalk_engine.infinitetalk.models.text_encoder import T5EncoderArgs
from infinitetalk_engine.infinitetalk.models.transformer_config import TransformerConfig
from infinitetalk_engine.infinitetalk.models.vae import VaeArgs

Shapes = dict[str, tuple[int, ...]]

# The tiny models, in the engine's own config types: what the engine infers back from the files' shapes.
# umT5: the embedding has a row per token (>= the tokenizer's vocabulary, like umT5's 256384 vs 256300).
TINY_T5 = T5EncoderArgs(vocab=160, dim=32, dim_attn=32, dim_ffn=64, num_heads=2, num_layers=2)
TINY_CLIP = ClipVisionArgs(dim=160, num_heads=2, num_layers=3)  # 2 heads of ViT-H's head width 80
# The DiT's audio sizes are the tiny wav2vec2's: 12 layers of width 32.
TINY_DIT = TransformerConfig(
    dim=32,
    ffn_dim=64,
    num_heads=2,
    num_layers=2,
    text_dim=TINY_T5.dim,
    clip_dim=TINY_CLIP.dim,
    audio_layers=12,
    audio_channels=32,
    audio_intermediate_dim=32,
    audio_dim=32,
    audio_tokens=8,
)
TINY_VAE = VaeArgs(base_dim=8)
LORA_RANK = 4


# 1. Key -> shape generators, one per released file ----------------------------------------------------------------


def dit_base_shapes(c: TransformerConfig) -> Shapes:
    dim, ffn, clip_dim, patch = c.dim, c.ffn_dim, c.clip_dim, c.patch_size
    head = c.out_dim * patch[0] * patch[1] * patch[2]
    s: Shapes = {
        "patch_embedding.weight": (dim, c.in_dim, *patch),
        "patch_embedding.bias": (dim,),
        "text_embedding.0.weight": (dim, c.text_dim),
        "text_embedding.0.bias": (dim,),
        "text_embedding.2.weight": (dim, dim),
        "text_embedding.2.bias": (dim,),
        "time_embedding.0.weight": (dim, c.freq_dim),
        "time_embedding.0.bias": (dim,),
        "time_embedding.2.weight": (dim, dim),
        "time_embedding.2.bias": (dim,),
        "time_projection.1.weight": (6 * dim, dim),
        "time_projection.1.bias": (6 * dim,),
        "img_emb.proj.0.weight": (clip_dim,),
        "img_emb.proj.0.bias": (clip_dim,),
        "img_emb.proj.1.weight": (clip_dim, clip_dim),
        "img_emb.proj.1.bias": (clip_dim,),
        "img_emb.proj.3.weight": (dim, clip_dim),
        "img_emb.proj.3.bias": (dim,),
        "img_emb.proj.4.weight": (dim,),
        "img_emb.proj.4.bias": (dim,),
        "head.head.weight": (head, dim),
        "head.head.bias": (head,),
        "head.modulation": (1, 2, dim),
    }
    for i in range(c.num_layers):
        b = f"blocks.{i}."
        s[b + "modulation"] = (1, 6, dim)
        for attn, names in (("self_attn", "qkvo"), ("cross_attn", ["q", "k", "v", "o", "k_img", "v_img"])):
            for n in names:
                s[f"{b}{attn}.{n}.weight"], s[f"{b}{attn}.{n}.bias"] = (dim, dim), (dim,)
        for n in (
            "self_attn.norm_q",
            "self_attn.norm_k",
            "cross_attn.norm_q",
            "cross_attn.norm_k",
            "cross_attn.norm_k_img",
        ):
            s[f"{b}{n}.weight"] = (dim,)
        s[b + "norm3.weight"], s[b + "norm3.bias"] = (dim,), (dim,)
        s[b + "ffn.0.weight"], s[b + "ffn.0.bias"] = (ffn, dim), (ffn,)
        s[b + "ffn.2.weight"], s[b + "ffn.2.bias"] = (dim, ffn), (dim,)
    return s


def adapter_shapes(c: TransformerConfig) -> Shapes:
    dim, intermediate, audio_dim, tokens = c.dim, c.audio_intermediate_dim, c.audio_dim, c.audio_tokens
    frame_features = c.audio_layers * c.audio_channels  # one wav2vec2 frame, all layers stacked
    s: Shapes = {
        "audio_proj.proj1.weight": (intermediate, c.audio_window * frame_features),
        "audio_proj.proj1.bias": (intermediate,),
        "audio_proj.proj1_vf.weight": (intermediate, (c.audio_window + c.vae_scale - 1) * frame_features),
        "audio_proj.proj1_vf.bias": (intermediate,),
        "audio_proj.proj2.weight": (intermediate, intermediate),
        "audio_proj.proj2.bias": (intermediate,),
        "audio_proj.proj3.weight": (tokens * audio_dim, intermediate),
        "audio_proj.proj3.bias": (tokens * audio_dim,),
        "audio_proj.norm.weight": (audio_dim,),
        "audio_proj.norm.bias": (audio_dim,),
    }
    for i in range(c.num_layers):
        b = f"blocks.{i}."
        s[b + "norm_x.weight"], s[b + "norm_x.bias"] = (dim,), (dim,)
        s[b + "audio_cross_attn.q_linear.weight"], s[b + "audio_cross_attn.q_linear.bias"] = (dim, dim), (dim,)
        s[b + "audio_cross_attn.kv_linear.weight"] = (2 * dim, audio_dim)
        s[b + "audio_cross_attn.kv_linear.bias"] = (2 * dim,)
        s[b + "audio_cross_attn.proj.weight"], s[b + "audio_cross_attn.proj.bias"] = (dim, dim), (dim,)
    return s


def t5_shapes(args: T5EncoderArgs) -> Shapes:
    dim, dim_attn, ffn = args.dim, args.dim_attn, args.dim_ffn
    s: Shapes = {"token_embedding.weight": (args.vocab, dim), "norm.weight": (dim,)}
    for i in range(args.num_layers):
        b = f"blocks.{i}."
        s[b + "norm1.weight"], s[b + "norm2.weight"] = (dim,), (dim,)
        for n in "qkv":
            s[f"{b}attn.{n}.weight"] = (dim_attn, dim)
        s[b + "attn.o.weight"] = (dim, dim_attn)
        s[b + "ffn.gate.0.weight"], s[b + "ffn.fc1.weight"] = (ffn, dim), (ffn, dim)
        s[b + "ffn.fc2.weight"] = (dim, ffn)
        s[b + "pos_embedding.embedding.weight"] = (args.num_buckets, args.num_heads)
    return s


def clip_visual_shapes(args: ClipVisionArgs, embed_dim: int) -> Shapes:
    width, mlp_ratio, patch = args.dim, args.mlp_ratio, args.patch_size
    tokens = (args.image_size // patch) ** 2 + 1
    s: Shapes = {
        "visual.patch_embedding.weight": (width, 3, patch, patch),
        "visual.cls_embedding": (1, 1, width),
        "visual.pos_embedding": (1, tokens, width),
        "visual.pre_norm.weight": (width,),
        "visual.pre_norm.bias": (width,),
        "visual.post_norm.weight": (width,),
        "visual.post_norm.bias": (width,),
        "visual.head": (width, embed_dim),
    }
    for i in range(args.num_layers):
        b = f"visual.transformer.{i}."
        for n in ("norm1", "norm2"):
            s[f"{b}{n}.weight"], s[f"{b}{n}.bias"] = (width,), (width,)
        s[b + "attn.to_qkv.weight"], s[b + "attn.to_qkv.bias"] = (3 * width, width), (3 * width,)
        s[b + "attn.proj.weight"], s[b + "attn.proj.bias"] = (width, width), (width,)
        s[b + "mlp.0.weight"], s[b + "mlp.0.bias"] = (width * mlp_ratio, width), (width * mlp_ratio,)
        s[b + "mlp.2.weight"], s[b + "mlp.2.bias"] = (width, width * mlp_ratio), (width,)
    return s


def clip_text_shapes(width: int, embed_dim: int) -> Shapes:
    """A token of the XLM-RoBERTa text tower that Wan's CLIP file also holds (the engine must drop it)."""
    return {"textual.token_embedding.weight": (50, width), "textual.head.0.weight": (embed_dim, width), "log_scale": ()}


def vae_shapes(args: VaeArgs) -> Shapes:
    dim, z, mult, res_blocks = args.base_dim, args.z_dim, args.dim_mult, args.num_res_blocks
    s: Shapes = {}

    def residual(prefix: str, cin: int, cout: int) -> None:
        s[prefix + "residual.0.gamma"] = (cin, 1, 1, 1)
        s[prefix + "residual.2.weight"], s[prefix + "residual.2.bias"] = (cout, cin, 3, 3, 3), (cout,)
        s[prefix + "residual.3.gamma"] = (cout, 1, 1, 1)
        s[prefix + "residual.6.weight"], s[prefix + "residual.6.bias"] = (cout, cout, 3, 3, 3), (cout,)
        if cin != cout:
            s[prefix + "shortcut.weight"], s[prefix + "shortcut.bias"] = (cout, cin, 1, 1, 1), (cout,)

    def middle(prefix: str, c: int) -> None:
        residual(prefix + "middle.0.", c, c)
        s[prefix + "middle.1.norm.gamma"] = (c, 1, 1)
        s[prefix + "middle.1.to_qkv.weight"], s[prefix + "middle.1.to_qkv.bias"] = (3 * c, c, 1, 1), (3 * c,)
        s[prefix + "middle.1.proj.weight"], s[prefix + "middle.1.proj.bias"] = (c, c, 1, 1), (c,)
        residual(prefix + "middle.2.", c, c)

    # Encoder: conv1, downsample stages, middle, head to 2*z (mean | log-variance).
    dims = [dim * m for m in (1, *mult)]
    s["encoder.conv1.weight"], s["encoder.conv1.bias"] = (dim, 3, 3, 3, 3), (dim,)
    index = 0
    for stage, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        for _ in range(res_blocks):
            residual(f"encoder.downsamples.{index}.", cin, cout)
            cin, index = cout, index + 1
        if stage != len(mult) - 1:
            p = f"encoder.downsamples.{index}."
            s[p + "resample.1.weight"], s[p + "resample.1.bias"] = (cout, cout, 3, 3), (cout,)
            if args.temporal_downsample[stage]:
                s[p + "time_conv.weight"], s[p + "time_conv.bias"] = (cout, cout, 3, 1, 1), (cout,)
            index += 1
    middle("encoder.", dims[-1])
    s["encoder.head.0.gamma"] = (dims[-1], 1, 1, 1)
    s["encoder.head.2.weight"], s["encoder.head.2.bias"] = (2 * z, dims[-1], 3, 3, 3), (2 * z,)
    s["conv1.weight"], s["conv1.bias"] = (2 * z, 2 * z, 1, 1, 1), (2 * z,)
    s["conv2.weight"], s["conv2.bias"] = (z, z, 1, 1, 1), (z,)

    # Decoder: conv1 from z, middle, upsample stages (inputs halved after each upsample), head to RGB.
    dims = [dim * m for m in (mult[-1], *mult[::-1])]
    temporal_up = args.temporal_downsample[::-1]
    s["decoder.conv1.weight"], s["decoder.conv1.bias"] = (dims[0], z, 3, 3, 3), (dims[0],)
    middle("decoder.", dims[0])
    index = 0
    for stage, (cin, cout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        if stage in (1, 2, 3):
            cin //= 2
        for _ in range(res_blocks + 1):
            residual(f"decoder.upsamples.{index}.", cin, cout)
            cin, index = cout, index + 1
        if stage != len(mult) - 1:
            p = f"decoder.upsamples.{index}."
            s[p + "resample.1.weight"], s[p + "resample.1.bias"] = (cout // 2, cout, 3, 3), (cout // 2,)
            if temporal_up[stage]:
                s[p + "time_conv.weight"], s[p + "time_conv.bias"] = (cout * 2, cout, 3, 1, 1), (cout * 2,)
            index += 1
    s["decoder.head.0.gamma"] = (dims[-1], 1, 1, 1)
    s["decoder.head.2.weight"], s["decoder.head.2.bias"] = (3, dims[-1], 3, 3, 3), (3,)
    return s


def lora_shapes(base: Shapes, rank: int) -> Shapes:
    """Kijai/lightx2v format: `diffusion_model.<linear>.lora_{down,up}.weight` + `.alpha` for every block linear,
    `.diff_b` for their biases, `.diff` for the norm weights (what the released 4-step LoRA holds)."""
    s: Shapes = {}
    for key, shape in base.items():
        if not key.startswith("blocks."):
            continue
        module, _, leaf = key.rpartition(".")
        if leaf == "weight" and len(shape) == 2:
            s[f"diffusion_model.{module}.lora_down.weight"] = (rank, shape[1])
            s[f"diffusion_model.{module}.lora_up.weight"] = (shape[0], rank)
            s[f"diffusion_model.{module}.alpha"] = ()
        elif leaf == "bias":
            s[f"diffusion_model.{module}.diff_b"] = shape
        elif leaf == "weight" and "norm" in module:
            s[f"diffusion_model.{module}.diff"] = shape
    return s


# 2. Random values ----------------------------------------------------------------------------------------------------


def random_tensors(
    shapes: Shapes, generator: torch.Generator, dtype: torch.dtype = torch.float32, lora: bool = False
) -> dict[str, torch.Tensor]:
    out = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if key.endswith(".alpha"):
            value = torch.tensor(4.0)  # ignored by the merge (no alpha/rank scaling), present in the release
        elif lora:
            value = torch.randn(shape, generator=generator) * 0.01
        elif (
            leaf in ("gamma",)
            or (leaf == "weight" and len(shape) == 1 and "norm" in key)
            or key.endswith("proj.0.weight")
            or key.endswith("proj.4.weight")
        ):
            value = 1 + 0.05 * torch.randn(shape, generator=generator)
        elif leaf == "modulation":
            value = torch.randn(shape, generator=generator) / shape[-1] ** 0.5
        else:
            value = 0.02 * torch.randn(shape, generator=generator)
        out[key] = value.to(dtype).contiguous()
    return out


# 3. The folder -------------------------------------------------------------------------------------------------------


def tokenizer_vocab() -> list[tuple[str, float]]:
    """A small umT5-style unigram vocabulary: <pad>=0, </s>=1, <unk>=2, then word pieces and single characters."""
    words = [
        "a",
        "person",
        "is",
        "talking",
        "the",
        "camera",
        "bright",
        "colours",
        "static",
        "blurred",
        "low",
        "quality",
        "worst",
        "ugly",
    ]
    letters = "abcdefghijklmnopqrstuvwxyz.,"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -3.0) for w in words]
    vocab += [(c, -5.0) for c in letters] + [("\u2581" + c, -6.0) for c in letters]
    return vocab


def write_tokenizer(folder: Path) -> int:
    from transformers import T5Tokenizer

    tokenizer = T5Tokenizer(vocab=tokenizer_vocab(), extra_ids=0)
    tokenizer.save_pretrained(str(folder))
    return len(tokenizer)


def write_wav2vec(folder: Path, seed: int) -> None:
    """An HF folder in the pretraining layout of TencentGameMate/chinese-wav2vec2-base (keys `wav2vec2.*` plus the
    unused quantizer/projection heads, legacy weight-norm names), stored as `pytorch_model.bin` like the original."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=TINY_DIT.audio_channels,
        num_hidden_layers=TINY_DIT.audio_layers,
        num_attention_heads=2,
        intermediate_size=2 * TINY_DIT.audio_channels,
        conv_dim=(32,) * 7,
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        codevector_dim=16,
        proj_codevector_dim=16,
        num_codevectors_per_group=8,
        architectures=["Wav2Vec2ForPreTraining"],
    )
    state = Wav2Vec2ForPreTraining(config).state_dict()
    renamed = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        renamed[key] = value.detach().clone()
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    # save_pretrained would write safetensors with new names; the released folder has a legacy .bin.
    (folder / "model.safetensors").unlink(missing_ok=True)
    torch.save(renamed, folder / "pytorch_model.bin")
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    ).save_pretrained(str(folder))


def write_tiny_weights(root: Path, seed: int = 0, dit_shards: int = 2) -> Path:
    """Write a complete tiny `weights/` folder under `root`; returns `root`."""
    g = torch.Generator().manual_seed(seed)
    dit = root / "Wan2.1-I2V-14B-480P"
    dit.mkdir(parents=True, exist_ok=True)

    # 1. DiT: Wan's config.json (no audio or text/CLIP widths: those come from tensor shapes) + shards + index.
    (dit / "config.json").write_text(
        json.dumps(
            {
                "_class_name": "WanModel",
                "_diffusers_version": "0.30.0",
                "dim": TINY_DIT.dim,
                "eps": 1e-06,
                "ffn_dim": TINY_DIT.ffn_dim,
                "freq_dim": 256,
                "in_dim": 36,
                "model_type": "i2v",
                "num_heads": TINY_DIT.num_heads,
                "num_layers": TINY_DIT.num_layers,
                "out_dim": 16,
                "text_len": 512,
            },
            indent=2,
        )
    )
    base_shapes = dit_base_shapes(TINY_DIT)
    base = random_tensors(base_shapes, g)
    keys = list(base)
    weight_map = {}
    for shard in range(dit_shards):
        name = f"diffusion_pytorch_model-{shard + 1:05d}-of-{dit_shards:05d}.safetensors"
        part = {k: base[k] for k in keys[shard::dit_shards]}
        save_file(part, dit / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    (dit / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2)
    )

    # 2. T5 (bf16 .pth, Wan names) and its tokenizer folder.
    tokens = write_tokenizer(dit / "google" / "umt5-xxl")
    assert tokens <= TINY_T5.vocab, "the embedding needs a row per token"
    torch.save(random_tensors(t5_shapes(TINY_T5), g, torch.bfloat16), dit / "models_t5_umt5-xxl-enc-bf16.pth")

    # 3. CLIP (both towers in one .pth, fp16 like the release) and the VAE (fp32 .pth).
    clip = random_tensors(
        {**clip_visual_shapes(TINY_CLIP, 32), **clip_text_shapes(TINY_CLIP.dim, 32)},
        g,
        torch.float16,
    )
    torch.save(clip, dit / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    torch.save(random_tensors(vae_shapes(TINY_VAE), g), dit / "Wan2.1_VAE.pth")

    # 4. wav2vec2, the single/multi audio adapters and the LoRA.
    write_wav2vec(root / "chinese-wav2vec2-base", seed)
    adapter = adapter_shapes(TINY_DIT)
    for kind in ("single", "multi"):
        (root / "InfiniteTalk" / kind).mkdir(parents=True, exist_ok=True)
        save_file(random_tensors(adapter, g), root / "InfiniteTalk" / kind / "infinitetalk.safetensors")
    lora = lora_shapes({**base_shapes, **adapter}, LORA_RANK)
    save_file(random_tensors(lora, g, torch.bfloat16, lora=True), root / "lightx2v_lora.safetensors")
    return root
