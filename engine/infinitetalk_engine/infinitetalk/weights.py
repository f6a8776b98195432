"""The seed's `weights/` folder: where each model file lives, and a presence check that names what is missing.

Layout (see ../shared/reference/infinitetalk-engine.md §1):

    weights/
      Wan2.1-I2V-14B-480P/
        config.json                                  DiT config (Wan names: dim, num_layers, ...)
        diffusion_pytorch_model-0000N-of-0000M.safetensors   (+ optional *.safetensors.index.json)
        models_t5_umt5-xxl-enc-bf16.pth              umT5-XXL encoder, Wan key names
        google/umt5-xxl/                             tokenizer files
        models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
        Wan2.1_VAE.pth
      chinese-wav2vec2-base/                         HF folder (config.json + weights)
      InfiniteTalk/single/infinitetalk.safetensors   audio adapter (multi/ for two speakers)
      lightx2v_lora.safetensors                      4-step distillation LoRA

Nothing here reads tensors; `loading.py` does. Every error is a `WeightsError` naming the path.
"""

from __future__ import annotations

import json
from pathlib import Path

from .loading import weights_error

DIT_FOLDER = "Wan2.1-I2V-14B-480P"
DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
DIT_SHARD_GLOB = "diffusion_pytorch_model*.safetensors"


class WeightsLayout:
    """Paths inside one `weights/` folder. Build with `WeightsLayout(Path(dir))`; call `check()` before loading."""

    def __init__(self, root: Path):
        self.root = root
        # 1. The Wan2.1 I2V folder.
        self.dit_dir = self.root / DIT_FOLDER
        self.dit_config = self.dit_dir / "config.json"
        self.t5 = self.dit_dir / "models_t5_umt5-xxl-enc-bf16.pth"
        self.tokenizer = self.dit_dir / "google" / "umt5-xxl"
        self.clip = self.dit_dir / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
        self.vae = self.dit_dir / "Wan2.1_VAE.pth"
        # 2. Audio encoder, InfiniteTalk adapters, LoRA.
        self.wav2vec = self.root / "chinese-wav2vec2-base"
        self.lora = self.root / "lightx2v_lora.safetensors"

    def adapter(self, two_speakers: bool = False) -> Path:
        return self.root / "InfiniteTalk" / ("multi" if two_speakers else "single") / "infinitetalk.safetensors"

    def dit_shards(self) -> list[Path]:
        """The DiT shard files: from the index json when there is one (any shard count), else every
        `diffusion_pytorch_model*.safetensors` in name order."""
        index = self.dit_dir / DIT_INDEX
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as exc:
                raise weights_error(index, f"not a safetensors index ({exc})") from exc
            shards = [self.dit_dir / name for name in sorted(set(weight_map.values()))]
        else:
            shards = sorted(self.dit_dir.glob(DIT_SHARD_GLOB))
        if not shards:
            raise weights_error(self.dit_dir / DIT_SHARD_GLOB, "no DiT weight shards found")
        for shard in shards:
            if not shard.is_file():
                raise weights_error(shard, "DiT shard listed in the index is missing")
        return shards

    def read_dit_config(self) -> dict:
        try:
            return json.loads(self.dit_config.read_text())
        except FileNotFoundError as exc:
            raise weights_error(self.dit_config, "missing") from exc
        except ValueError as exc:
            raise weights_error(self.dit_config, f"not valid JSON ({exc})") from exc

    def required_files(self, two_speakers: bool = False, use_lora: bool = True) -> list[Path]:
        files = [self.dit_config, self.t5, self.clip, self.vae, self.adapter(False)]
        if two_speakers:
            files.append(self.adapter(True))
        if use_lora:
            files.append(self.lora)
        return files

    def check(self, two_speakers: bool = False, use_lora: bool = True) -> None:
        """Raise `WeightsError` naming the first missing file or folder (cheap: no tensor is read)."""
        if not self.root.is_dir():
            raise weights_error(self.root, "weights folder does not exist")
        for path in self.required_files(two_speakers, use_lora):
            if not path.is_file():
                raise weights_error(path, "missing")
        for folder in (self.tokenizer, self.wav2vec):
            if not folder.is_dir() or not any(folder.iterdir()):
                raise weights_error(folder, "missing or empty folder")
        if not (self.wav2vec / "config.json").is_file():
            raise weights_error(self.wav2vec / "config.json", "missing")
        self.dit_shards()
