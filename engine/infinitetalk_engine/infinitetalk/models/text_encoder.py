"""umT5-XXL text encoder: transformers' `UMT5EncoderModel` loaded from Wan's T5 checkpoint, plus prompt encoding.

Wan's `T5Encoder` is a umT5 encoder (per-layer relative position bias, gated-GELU(tanh) FFN, RMS LayerNorm without
mean subtraction, unscaled attention logits), so only key names differ. The pipeline keeps each prompt's output
trimmed to its real tokens; the DiT re-pads to 512 rows with zeros.
Reference: ../shared/reference/infinitetalk-engine.md §1, ../shared/parity/README.md §4.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import UMT5Config, UMT5EncoderModel

from ..loading import WeightsSource, load_weights, parameters_on_meta, weights_error


@dataclass(frozen=True)
class T5EncoderArgs:
    """Shape of Wan's T5 encoder, in Wan's own names. The default is umT5-XXL as shipped with Wan2.1."""

    vocab: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6
    text_len: int = 512

    @classmethod
    def umt5_xxl(cls) -> T5EncoderArgs:
        return cls()

    @classmethod
    def from_wan_kwargs(cls, kwargs: dict, text_len: int = 512) -> T5EncoderArgs:
        """From the keyword arguments of Wan's `T5Encoder` (vocab, dim, dim_attn, dim_ffn, num_heads, ...)."""
        if kwargs.get("shared_pos", False):
            raise ValueError("shared_pos=True (one bias table for all layers) is plain T5, not umT5; unsupported")
        names = ("vocab", "dim", "dim_attn", "dim_ffn", "num_heads", "num_layers", "num_buckets")
        return cls(**{name: kwargs[name] for name in names}, text_len=text_len)

    @classmethod
    def from_fixture_config(cls, path: str | Path) -> T5EncoderArgs:
        """From a parity fixture's `t5/config.json`."""
        config = json.loads(Path(path).read_text())
        return cls.from_wan_kwargs(config["t5_encoder_kwargs"], config.get("text_len", 512))

    def to_hf(self) -> UMT5Config:
        return UMT5Config(
            vocab_size=self.vocab,
            d_model=self.dim,
            d_kv=self.dim_attn // self.num_heads,
            d_ff=self.dim_ffn,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            relative_attention_num_buckets=self.num_buckets,
            relative_attention_max_distance=self.max_distance,
            layer_norm_epsilon=self.eps,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
            is_encoder_decoder=False,
            use_cache=False,
            tie_word_embeddings=True,
        )


# Wan block-relative names -> transformers names. `ffn.gate.0` is the GELU branch (wi_0), `ffn.fc1` the linear
# branch (wi_1): swapping them is a known wrong mapping that still "works" but gives different outputs.
_BLOCK_KEYS = {
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm1.weight": "layer.0.layer_norm.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)")


def wan_t5_key(key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """One Wan T5 encoder key -> `UMT5EncoderModel` keys; unknown keys pass through unchanged (and are then
    reported as unexpected)."""
    match = _BLOCK_KEY.fullmatch(key)
    if key == "token_embedding.weight":
        # Tied: the same tensor under both names (loaded once), re-tied after loading.
        return [("shared.weight", tensor), ("encoder.embed_tokens.weight", tensor)]
    if key == "norm.weight":
        return [("encoder.final_layer_norm.weight", tensor)]
    if match and match.group(2) in _BLOCK_KEYS:
        return [(f"encoder.block.{match.group(1)}.{_BLOCK_KEYS[match.group(2)]}", tensor)]
    return [(key, tensor)]


def load_t5_encoder(
    source: WeightsSource,
    args: T5EncoderArgs = T5EncoderArgs(),
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
) -> UMT5EncoderModel:
    """The umT5 encoder from Wan's checkpoint (`models_t5_umt5-xxl-enc-bf16.pth`), in eval mode on `device`.
    Upstream runs it in bf16 (the file's dtype, so loading copies nothing on the host)."""
    with parameters_on_meta():
        model = UMT5EncoderModel(args.to_hf())
    load_weights(model, source, name="umT5", convert=wan_t5_key, dtype=dtype, device=device)
    model.encoder.embed_tokens.weight = model.shared.weight
    return model


# 1. Prompt text -> token ids.


def clean_prompt(text: str) -> str:
    """Wan's 'whitespace' cleaning: fix mojibake (ftfy), unescape HTML twice, collapse whitespace."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


def load_tokenizer(folder: str | Path):
    """The umT5 tokenizer from its local folder (`google/umt5-xxl/` in the weights); never reaches a hub."""
    from transformers import AutoTokenizer

    if not Path(folder).is_dir():
        raise weights_error(folder, "tokenizer folder missing")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise weights_error(folder, f"not a tokenizer folder ({exc})") from exc


def tokenize(tokenizer, prompts: list[str], text_len: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Cleaned prompts -> (ids, mask), each (B, text_len): padded to and truncated at `text_len`, with EOS."""
    batch = tokenizer(
        [clean_prompt(p) for p in prompts],
        padding="max_length",
        truncation=True,
        max_length=text_len,
        add_special_tokens=True,
        return_tensors="pt",
    )
    return batch.input_ids, batch.attention_mask


# 2. Token ids -> per-prompt contexts.


@torch.no_grad()
def encode_tokens(model: UMT5EncoderModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L) ids and mask -> (B, L, dim) encoder output at every position (padded ones are computed too)."""
    device = model.shared.weight.device
    return model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state


def trim_to_mask(out: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Keep each row's first `mask.sum()` positions: (B, L, dim) -> B tensors (len_i, dim)."""
    lengths = mask.gt(0).sum(dim=1).tolist()
    return [row[:length] for row, length in zip(out, lengths, strict=True)]


def encode_prompts(model: UMT5EncoderModel, tokenizer, prompts: list[str], text_len: int = 512) -> list[torch.Tensor]:
    """What the pipeline calls: prompts -> one trimmed context (len_i, dim) per prompt, in the model's dtype."""
    ids, mask = tokenize(tokenizer, prompts, text_len)
    return trim_to_mask(encode_tokens(model, ids, mask), mask)


def relative_position_buckets(model: UMT5EncoderModel, length: int) -> torch.Tensor:
    """(length, length) bucket index of key-minus-query offsets, as the encoder's attention computes it."""
    attention = model.encoder.block[0].layer[0].SelfAttention
    positions = torch.arange(length)
    return attention._relative_position_bucket(positions[None, :] - positions[:, None])


def position_bias(model: UMT5EncoderModel, layer: int, length: int) -> torch.Tensor:
    """(1, heads, length, length) relative position bias of one layer (umT5 has one table per layer)."""
    return model.encoder.block[layer].layer[0].SelfAttention.compute_bias(length, length)


__all__ = [
    "T5EncoderArgs",
    "wan_t5_key",
    "load_t5_encoder",
    "clean_prompt",
    "load_tokenizer",
    "tokenize",
    "encode_tokens",
    "trim_to_mask",
    "encode_prompts",
    "relative_position_buckets",
    "position_bias",
]
