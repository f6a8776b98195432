"""The infinitetalk engine: the real model (Wan2.1-I2V-14B + InfiniteTalk adapter + LightX2V LoRA).

    python -m infinitetalk_engine --engine infinitetalk --weights /path/to/weights [--device cuda]
        [--engine-option KEY=VALUE ...]

Models are loaded once (`model_set.py`, streamed so host RAM stays far below model size) and stay resident; jobs
run one at a time on the device. This is the only module of the subpackage that knows the engine contract: the
model code below raises plain errors (`WeightsError`, `ValueError`), mapped to protocol codes here.

A job goes through the protocol's stages:
1. decoding_audio: 16 kHz mono, -23 LUFS (two speakers: both tracks, zero-padded to the longer; the MP4 gets
   their sum).   2. audio_features: wav2vec2 at 25 fps.   3. encoding_image: bucket resize/crop, CLIP features,
   speaker masks.   4. encoding_text: umT5 contexts (cached per prompt).   5. generating: the streaming sampler
   (`pipeline.py`), each clip encoded into the MP4 as soon as it is decoded, so memory stays flat in video length.
6. encoding_video: finish the MP4.

Engine options (`--engine-option KEY=VALUE`):
  lora=on|off            use lightx2v_lora.safetensors (default on; off = the 40-step base sampler defaults)
  lora_scale=1.0         LoRA strength merged at load time (a job's `lora_scale` re-merges, slowly, see ModelSet)
  two_speakers=auto|on|off   load InfiniteTalk/multi/ beside single/ (auto: when the file exists)
  dtype=bf16|fp16|fp32   DiT weights (default bf16 on GPU, fp32 on CPU)
  vae_dtype=fp32|bf16    the VAE (default fp32, as upstream, but bf16 in the offload profile on a GPU)
  compile=off|on         torch.compile each DiT block after loading (first job pays the compile time)
  frame_num=81, motion_frames=9   clip length and overlap (1 + 4k each)
  buckets=HxW[,HxW...]   FOR TESTS/DEBUG: replace the 480p/720p bucket tables with these sizes (multiples of 16)
  max_steps=50           the largest `steps` a job may ask for
  memory_profile=auto|resident|fp8|offload   how the weights sit in GPU memory (memory_profiles.py; default auto)
  offload_ahead=1        offload: DiT blocks copied to the GPU ahead of the one computing
  encode_in_background=on|off   H.264-encode each clip on a thread while the next clip is sampled (default on)
  attention=auto|flash|efficient|cudnn|math   restrict PyTorch's attention kernels (default auto: PyTorch picks)
  lora_dir=DIR           the LoRA library (default <weights>/loras)
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from .. import __version__
from ..contract import Engine, EngineError, EngineOptions, JobContext, JobParams, JobRequest, JobResult
from ..media.audio import MixedTracks, open_speech
from ..media.background_encoder import BackgroundClipEncoder, InlineClipEncoder
from ..media.image import BUCKETS, choose_bucket, file_digest, load_image, plan_resize_crop, resize_and_crop
from ..media.live_stream import live_stream_folder
from ..media.video import FPS, Mp4Writer
from ..parameters import DEFAULT_PROMPT, loras_parameter, parameter_capabilities, standard_parameters
from ..recent_cache import RecentCache
from .loading import WeightsError
from .lora_library import (
    LibraryLora,
    LoraRefused,
    RuntimeLoras,
    add_to_library,
    library,
    linear_shapes,
    list_library,
    read_library_lora,
    resolve,
)
from .memory_plan import ModelSizes
from .memory_profiles import CHOICES as PROFILE_CHOICES
from .memory_profiles import ProfileChoice, choose_profile, host_available_bytes
from .models.attention_backend import ATTENTION_BACKENDS, sdpa_backend
from .models.audio_features import speech_features
from .models.block_offload import visiting
from .pipeline import Conditioning, Hooks, SamplerSettings, generate_clips, reference_latents, to_uint8_frames
from .sampler.schedule import DEFAULT_SHIFT
from .weights import WeightsLayout

log = logging.getLogger(__name__)

# InfiniteTalk's default negative prompt (upstream's MultiTalk/InfiniteTalk config, `sample_neg_prompt`): the
# English sentence, not Wan2.1's Chinese one. Used when a job gives none and text guidance is on (three passes).
INFINITETALK_NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)
DEFAULT_SEED = 42
DEFAULT_MAX_STEPS = 50
FACE_SCALE = 0.05  # upstream's margin for the default left/right speaker halves
TEXT_CACHE_SIZE = 16
IMAGE_CACHE_SIZE = 4  # portraits whose encodings are kept (a batch shares one)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Share of the job's progress before generation (audio, image, text) and after it (finishing the MP4).
BEFORE_GENERATION, AFTER_GENERATION = 0.05, 0.02


def bucket_size(
    width: int, height: int, resolution: str, custom: Sequence[tuple[int, int]] | None = None
) -> tuple[int, int]:
    """(height, width) the image is resized and cropped to: upstream's table rule (`choose_bucket`: the nearest
    table key, not the nearest h/w), or, for `custom` sizes (tests), the size with the nearest h/w ratio."""
    if custom is not None:
        return min(custom, key=lambda hw: abs(hw[0] / hw[1] - height / width))
    bucket = choose_bucket(width, height, resolution)
    return bucket.height, bucket.width


@dataclass(frozen=True)
class EngineSettings:
    """`--engine-option` values, parsed and checked at start-up."""

    use_lora: bool = True
    lora_scale: float = 1.0
    two_speakers: bool | None = None
    dtype: torch.dtype | None = None
    frame_num: int = 81
    motion_frames: int = 9
    buckets: tuple[tuple[int, int], ...] | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    vae_dtype: torch.dtype | None = None  # None: fp32 (upstream), bf16 in the offload profile on a GPU
    compile: bool = False
    memory_profile: str = "auto"  # auto, resident, fp8, offload (memory_profiles.py)
    offload_ahead: int = 1  # offload: blocks copied ahead of the one computing
    encode_in_background: bool = True  # H.264-encode a clip while the next one is sampled
    attention: str = "auto"  # PyTorch SDPA backend of the DiT's attention (sdpa_backend)
    lora_dir: str | None = None  # the LoRA library (default: <weights>/loras)

    @classmethod
    def from_options(cls, extra: dict[str, str]) -> EngineSettings:
        known = {
            "lora",
            "lora_scale",
            "two_speakers",
            "dtype",
            "frame_num",
            "motion_frames",
            "buckets",
            "max_steps",
            "vae_dtype",
            "compile",
            "memory_profile",
            "offload_ahead",
            "encode_in_background",
            "attention",
            "lora_dir",
        }
        unknown = sorted(set(extra) - known)
        if unknown:
            raise EngineError("load_failed", f"unknown engine option(s) {unknown}; known: {sorted(known)}")
        try:
            switch = {"on": True, "off": False, "auto": None}
            buckets = None
            if "buckets" in extra:
                buckets = tuple(tuple(int(v) for v in size.lower().split("x")) for size in extra["buckets"].split(","))
                if any(len(b) != 2 or b[0] % 16 or b[1] % 16 or min(b) <= 0 for b in buckets):
                    raise ValueError("buckets must be HxW sizes, multiples of 16")
            settings = cls(
                use_lora=switch[extra.get("lora", "on")] is not False,
                lora_scale=float(extra.get("lora_scale", 1.0)),
                two_speakers=switch[extra.get("two_speakers", "auto")],
                dtype=DTYPES[extra["dtype"]] if "dtype" in extra else None,
                frame_num=int(extra.get("frame_num", 81)),
                motion_frames=int(extra.get("motion_frames", 9)),
                buckets=buckets,
                max_steps=int(extra.get("max_steps", DEFAULT_MAX_STEPS)),
                vae_dtype={"fp32": torch.float32, "bf16": torch.bfloat16, None: None}[extra.get("vae_dtype")],
                compile=switch[extra.get("compile", "off")] is True,
                memory_profile=extra.get("memory_profile", "auto"),
                offload_ahead=int(extra.get("offload_ahead", 1)),
                encode_in_background=switch[extra.get("encode_in_background", "on")] is not False,
                attention=extra.get("attention", "auto"),
                lora_dir=extra.get("lora_dir"),
            )
            if settings.offload_ahead < 1:
                raise ValueError("offload_ahead must be at least 1")
            if settings.attention not in ATTENTION_BACKENDS:
                raise ValueError(f"attention must be one of {', '.join(ATTENTION_BACKENDS)}")
            if settings.memory_profile not in PROFILE_CHOICES:
                raise ValueError(f"memory_profile must be one of {', '.join(PROFILE_CHOICES)}")
            SamplerSettings(frame_num=settings.frame_num, motion_frames=settings.motion_frames).validate()
        except (KeyError, ValueError) as exc:
            raise EngineError("load_failed", f"bad engine option: {exc}") from exc
        return settings


class InfiniteTalkEngine(Engine):
    name = "infinitetalk"
    version = __version__

    def __init__(self, options: EngineOptions):
        if not options.weights:
            raise EngineError("load_failed", "the infinitetalk engine needs --weights DIR (the seed's weights/ folder)")
        self.options = options
        self.settings = EngineSettings.from_options(options.extra)
        self.layout = WeightsLayout(Path(options.weights))
        self.device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError("load_failed", f"--device {options.device}: CUDA is not available on this machine")
        if self.device.type != "cuda" and self.settings.attention in ("efficient", "cudnn"):
            raise EngineError("load_failed", f"attention={self.settings.attention} needs a CUDA GPU")
        self.max_jobs = options.max_jobs or 1
        self.memory = self._choose_memory_profile()
        log.info("memory profile %s: %s", self.memory.profile, self.memory.reason)
        self.models = None
        self._device_lock = threading.Lock()  # one job at a time on the device; others wait their turn
        self._text_cache: RecentCache[torch.Tensor] = RecentCache(TEXT_CACHE_SIZE)
        self._image_cache: RecentCache[tuple] = RecentCache(IMAGE_CACHE_SIZE)
        self.lora_dir = Path(self.settings.lora_dir) if self.settings.lora_dir else self.layout.root / "loras"
        self.rescan_loras()
        self._lora_cache: dict[str, tuple[float, LibraryLora]] = {}

    def _dit_linear_shapes(self) -> dict[str, tuple[int, int]] | None:
        """The DiT's linear layers (for the library's fit check): the loaded model's, or before loading from its
        config on the meta device; `None` when the folder lacks the configs (then `load()` names what is missing)."""
        if self.models is not None:
            return linear_shapes(self.models.dit)
        try:
            from transformers import Wav2Vec2Config

            from .loading import parameters_on_meta
            from .model_set import dit_config
            from .models.transformer import InfiniteTalkTransformer

            wav2vec = Wav2Vec2Config.from_json_file(str(self.layout.wav2vec / "config.json"))
            with parameters_on_meta():
                dit = InfiniteTalkTransformer(dit_config(self.layout, wav2vec.num_hidden_layers, wav2vec.hidden_size))
            return linear_shapes(dit)
        except (OSError, ValueError, KeyError):
            return None

    def add_lora(self, name: str, source: str) -> dict[str, Any]:
        shapes = self._dit_linear_shapes()
        if shapes is None:
            raise EngineError("not_ready", "the model's layers are unknown until it has loaded")
        try:
            listing = add_to_library(Path(source), self.lora_dir, name, shapes)
        except LoraRefused as exc:
            raise EngineError(exc.code, exc.message) from exc
        self.rescan_loras()
        return listing.to_json()

    def rescan_loras(self) -> None:
        self.loras = list_library(self.lora_dir, self._dit_linear_shapes() if library(self.lora_dir) else None)

    def _library_loras(self, requested: list[dict] | None) -> list[tuple[LibraryLora, float]]:
        """The job's library LoRAs, read once and kept while their files do not change."""
        chosen = []
        for entry in requested or []:
            path = self.lora_dir / f"{entry['name']}.safetensors"
            try:
                modified = path.stat().st_mtime
                cached = self._lora_cache.get(entry["name"])
                if cached is None or cached[0] != modified:
                    self._lora_cache[entry["name"]] = (modified, read_library_lora(path))
            except (OSError, WeightsError) as exc:
                raise EngineError("invalid_lora", f"LoRA {entry['name']} cannot be read: {exc}") from exc
            chosen.append((self._lora_cache[entry["name"]][1], float(entry.get("scale", 1.0))))
        return chosen

    def _choose_memory_profile(self) -> ProfileChoice:
        """The profile asked for, or with `auto` the first that fits the GPU's free memory (memory_profiles.py)."""
        free = total = None
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
        two = self.settings.two_speakers
        if two is None:
            two = self.layout.adapter(True).is_file()
        sizes = None
        if self.settings.memory_profile in ("auto", "offload") and free is not None:
            try:
                sizes = ModelSizes.from_weights(self.layout.root)
            except (OSError, ValueError, KeyError):  # an incomplete folder: load() names what is missing
                sizes = ModelSizes.full_size()
        try:
            return choose_profile(
                self.settings.memory_profile,
                self.device.type,
                free,
                total,
                sizes,
                bool(two),
                host_available_bytes() if self.device.type == "cuda" else None,
            )
        except ValueError as exc:
            raise EngineError("load_failed", str(exc)) from exc

    # MARK: - Engine

    def capabilities(self) -> dict[str, Any]:
        two = self.settings.two_speakers
        if two is None:
            two = self.layout.adapter(True).is_file()
        parameters = standard_parameters(
            resolutions=tuple(BUCKETS),
            default_steps=4 if self.settings.use_lora else 40,
            max_steps=self.settings.max_steps,
            two_speakers=bool(two),
            lora_scale=self.settings.use_lora,
            audio_guidance_steps=True,
        )
        parameters.append(loras_parameter(tuple(lora.name for lora in self.loras)))
        return {
            **parameter_capabilities(parameters),
            "fps": FPS,
            "max_concurrent_jobs": self.max_jobs,
            "device": str(self.device),
            "is_preview": False,
            "memory_profile": self.memory.profile,
            "loras": [lora.to_json() for lora in self.loras],
        }

    def load(self) -> None:
        from .model_set import ModelSetOptions, load_model_set

        options = ModelSetOptions(
            device=str(self.device),
            dit_dtype=self.settings.dtype,
            lora_scale=self.settings.lora_scale,
            use_lora=self.settings.use_lora,
            two_speakers=self.settings.two_speakers,
            vae_dtype=self.settings.vae_dtype or self._default_vae_dtype(),
            memory_profile=self.memory.profile,
            offload_ahead=self.settings.offload_ahead,
        )
        try:
            self.models = load_model_set(self.layout, options)
        except ValueError as exc:  # a WeightsError naming the file, or a DiT config this model cannot run
            raise EngineError("load_failed", str(exc)) from exc
        if self.settings.compile and self.models.offload is not None:
            log.warning("compile=on is ignored in the offload profile: its blocks change device around each forward")
        elif self.settings.compile:
            for block in self.models.dit.blocks:
                block.compile()

    def _default_vae_dtype(self) -> torch.dtype:
        """fp32 as upstream; bf16 in the offload profile on a GPU, where every GiB counts (memory_plan.py)."""
        offload_on_gpu = self.memory.profile == "offload" and self.device.type == "cuda"
        return torch.bfloat16 if offload_on_gpu else torch.float32

    def run(self, job: JobRequest, ctx: JobContext) -> JobResult:
        if self.models is None:
            raise EngineError("not_ready", "models are not loaded", retryable=True)
        out_of_memory = None
        with self._device_lock, tempfile.TemporaryDirectory(prefix="infinitetalk-job-") as scratch:
            try:
                return self._run(job, ctx, scratch)
            except torch.cuda.OutOfMemoryError as exc:
                out_of_memory = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
            finally:
                if self.device.type == "cuda":
                    gc.collect()
                    torch.cuda.empty_cache()
        # Raised outside the handler so the failed step's tensors (held by the traceback) are already freed. Not
        # retryable: the same job on the same engine needs the same memory.
        raise EngineError("gpu_out_of_memory", self._out_of_memory_message(job, out_of_memory))

    def _out_of_memory_message(self, job: JobRequest, detail: str) -> str:
        """What ran out and what is left, so the user can pick a smaller resolution or another profile."""
        free = "free memory unknown"
        if self.device.type == "cuda":
            free_bytes, total_bytes = torch.cuda.mem_get_info(self.device)
            free = f"{free_bytes / 2**30:.1f} of {total_bytes / 2**30:.1f} GiB free after freeing the job's memory"
        smaller = {"resident": "memory_profile=fp8 or offload", "fp8": "memory_profile=offload"}.get(
            self.memory.profile
        )
        return (
            f"the GPU ({self.device}) ran out of memory on a {job.params.resolution or '480p'} job with the "
            f"{self.memory.profile} memory profile ({free}): {detail}. A lower resolution needs less memory"
            f"{f', and so does {smaller}' if smaller else ''}."
        )

    # MARK: - one job

    def _run(self, job: JobRequest, ctx: JobContext, scratch: str) -> JobResult:
        models = self.models
        params = job.params
        two_speakers = bool(params.audio2_path)
        settings = self._sampler_settings(params)
        steps = settings.steps

        # 1. Audio: 16 kHz mono, loudness-normalised; 25 video frames per second of speech.
        ctx.stage("decoding_audio", "Decoding audio")
        # Kept on disk (`scratch`) and read in pieces: long audio does not grow the job's memory.
        paths = [job.audio_path, params.audio2_path] if two_speakers else [job.audio_path]
        limit = self.options.max_audio_seconds
        tracks = [open_speech(path, f"{scratch}/speaker{i}.f32", limit)[0] for i, path in enumerate(paths)]
        length = max(t.size for t in tracks)
        tracks = [dataclasses.replace(t, padded_to=length) for t in tracks]
        n_frames = int(length / 16000 * FPS)
        if n_frames < 1:
            raise EngineError("bad_audio", "the audio is shorter than one video frame")
        ctx.check_cancelled()

        # 2. wav2vec2 features per speaker: (n_frames, layers, hidden).
        ctx.stage("audio_features", "Extracting speech features")
        audio = [speech_features(models.audio, track, n_frames) for track in tracks]
        ctx.progress(0.02)
        ctx.check_cancelled()

        # 3. Image: bucket, CLIP features, speaker masks.
        ctx.stage("encoding_image", "Encoding the image")
        picture = load_image(job.image_path, self.options.max_image_pixels)
        height, width = bucket_size(picture.width, picture.height, params.resolution, self.settings.buckets)
        image = conditioning_image(picture, height, width)
        image = image.to(self.device)  # (3, H, W) [-1, 1]
        clip_features, image_latents = self._encode_reference(job.image_path, image, settings.frame_num)
        masks = speaker_masks(
            picture.width,
            picture.height,
            height,
            width,
            params.speaker_boxes if two_speakers else None,
            2 if two_speakers else 1,
        )
        ctx.progress(0.03)
        ctx.check_cancelled()

        # 4. Text contexts (the negative prompt only when text guidance is on).
        ctx.stage("encoding_text", "Encoding the prompt")
        context = self._encode_text(params.prompt or DEFAULT_PROMPT)
        negative = None
        if not math.isclose(settings.text_scale, 1.0):
            negative = self._encode_text(params.negative_prompt or INFINITETALK_NEGATIVE_PROMPT)
        ctx.progress(BEFORE_GENERATION)
        ctx.check_cancelled()

        # 5. Generate, encoding each clip into the MP4 as it comes.
        lora_scale = self.settings.lora_scale if params.lora_scale is None else params.lora_scale
        if self.settings.use_lora and lora_scale != models.lora_scale:
            ctx.stage("generating", f"Re-merging the LoRA at scale {lora_scale:g} (slow, once per change)")
            try:
                models.set_lora_scale(lora_scale)
            except WeightsError as exc:  # the next job re-merges again (its scale differs from NaN): that repairs it
                raise EngineError(
                    "internal",
                    f"re-merging the LoRA failed, DiT weights are inconsistent until the next successful merge: {exc}",
                ) from exc
        models.use_adapter("multi" if two_speakers else "single")
        cond = Conditioning(
            image=image,
            context=context,
            context_negative=negative,
            clip_features=clip_features,
            audio=audio,
            ref_target_masks=masks.to(self.device),
            image_latents=image_latents,
        )
        mix = MixedTracks(tuple(tracks)) if two_speakers else tracks[0]  # the writer clips what it reads

        def on_clip(index: int, clips: int) -> None:
            ctx.stage("generating", f"Generating clip {index + 1} of {clips}", clip=index + 1, clips=clips)

        def on_step(index: int, clips: int, step: int, steps_: int) -> None:
            done = index * (steps_ + 1) + step + 1
            ctx.progress(
                generation_fraction(done, clips * (steps_ + 1)),
                step=step + 1,
                steps=steps_,
                clip=index + 1,
                clips=clips,
            )

        hooks = Hooks(on_step=on_step, check_cancelled=ctx.check_cancelled, on_clip=on_clip)
        styles = self._library_loras(params.loras)
        for lora, _scale in styles:
            _, problems = resolve(lora, models.dit)
            if problems:
                raise EngineError("invalid_lora", f"LoRA {lora.name} does not fit this model: {'; '.join(problems)}")
        with (
            Mp4Writer(
                job.output_path,
                width,
                height,
                audio=mix,
                max_frames=n_frames,
                crf=self.options.video_crf or 20,
                preset=self.options.video_preset or "veryfast",
                live=live_stream_folder(job, ctx),
            ) as writer,
            RuntimeLoras(models.dit, styles),  # hooks only for this job: the weights are never changed
            sdpa_backend(self.settings.attention),
            (BackgroundClipEncoder if self.settings.encode_in_background else InlineClipEncoder)(writer) as encoder,
        ):
            for clip in generate_clips(models.dit, models.vae, cond, settings, hooks, self.device):
                encoder.submit(to_uint8_frames(clip.frames))  # then its live segment; the next clip samples meanwhile
                clips_done = clip.index + 1
                ctx.progress(
                    generation_fraction(clips_done * (steps + 1), clip.clips * (steps + 1)),
                    step=steps,
                    steps=steps,
                    clip=clips_done,
                    clips=clip.clips,
                )
            encoder.finish()
            ctx.check_cancelled()
            # 6. Finish the file (flush the encoders, rename the part file).
            ctx.stage("encoding_video", "Finishing the MP4")
        ctx.progress(1.0)
        return JobResult.of_video(job.output_path, writer.frames_written, FPS, width, height)

    # MARK: - helpers

    def _sampler_settings(self, params: JobParams) -> SamplerSettings:
        lora = self.settings.use_lora
        steps = params.steps if params.steps is not None else (4 if lora else 40)
        shift = params.shift if params.shift is not None else DEFAULT_SHIFT.get(params.resolution, 7.0)
        text = params.text_guidance_scale if params.text_guidance_scale is not None else (1.0 if lora else 5.0)
        audio = params.audio_guidance_scale if params.audio_guidance_scale is not None else (2.0 if lora else 4.0)
        color = params.color_correction if params.color_correction is not None else 1.0
        problems = []
        if not 1 <= steps <= self.settings.max_steps:
            problems.append(f"steps must be 1..{self.settings.max_steps}, got {steps}")
        if not shift > 0:
            problems.append(f"shift must be positive, got {shift}")
        if text < 0 or audio < 0:
            problems.append("guidance scales must not be negative")
        if not 0 <= color <= 1:
            problems.append(f"color_correction must be in [0, 1], got {color}")
        if params.audio_guidance_steps is not None and params.audio_guidance_steps < 0:
            problems.append(f"audio_guidance_steps must not be negative, got {params.audio_guidance_steps}")
        if params.lora_scale is not None and not 0 <= params.lora_scale <= 4:
            problems.append(f"lora_scale must be in [0, 4], got {params.lora_scale}")
        if params.lora_scale is not None and not lora:
            problems.append("lora_scale needs the LoRA, which this engine runs without (lora=off)")
        if params.audio2_path and not self.models.two_speakers:
            problems.append("two speakers need the InfiniteTalk/multi adapter, which is not loaded")
        if params.speaker_boxes is not None and (
            len(params.speaker_boxes) != 2 or any(len(b) != 4 for b in params.speaker_boxes)
        ):
            problems.append("speaker_boxes must be two [x_min, y_min, x_max, y_max] boxes")
        if problems:
            raise EngineError("bad_params", "; ".join(problems))
        return SamplerSettings(
            frame_num=self.settings.frame_num,
            motion_frames=self.settings.motion_frames,
            steps=steps,
            shift=shift,
            text_scale=text,
            audio_scale=audio,
            audio_guidance_steps=params.audio_guidance_steps,
            color_correction=color,
            seed=DEFAULT_SEED if params.seed is None else params.seed,
        )

    def _encode_reference(self, image_path: str, image: torch.Tensor, frame_num: int):
        """The portrait's CLIP features and VAE reference latents, cached by the picture's bytes and bucket: jobs
        that share a portrait (a batch, or the same picture again) encode it once."""
        from .models.image_encoder import encode_image

        models = self.models

        def encode() -> tuple:
            with visiting(models.clip, self.device):  # offload: CLIP lives in host memory, on the GPU only now
                features = encode_image(models.clip, image[None])  # (1, 257, 1280)
            return features, reference_latents(models.vae, image, frame_num, self.device)

        return self._image_cache.get_or_make((file_digest(image_path), tuple(image.shape), frame_num), encode)

    def _encode_text(self, prompt: str) -> torch.Tensor:
        """The prompt's trimmed umT5 output, cached: the default prompts are the same for every job."""
        from .models.text_encoder import encode_prompts

        t5 = self.models.t5

        def encode() -> torch.Tensor:
            # fp8 and offload: umT5 lives in host memory; it visits the GPU when there is room for it now
            resident = t5.shared.weight.device == self.device
            visit = resident or (self.device.type == "cuda" and _fits_on(self.device, _bytes_of(t5) * 1.25 + 2**30))
            with visiting(t5, self.device) if visit else contextlib.nullcontext():
                (context,) = encode_prompts(t5, self.models.tokenizer, [prompt])
            return context.to(self.device)

        return self._text_cache.get_or_make(prompt, encode)


def _bytes_of(module: torch.nn.Module) -> int:
    """Its weights' bytes, fp8 layers' buffers included."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _fits_on(device: torch.device, needed: float) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return free >= needed


def generation_fraction(done: int, total: int) -> float:
    return BEFORE_GENERATION + (1 - BEFORE_GENERATION - AFTER_GENERATION) * done / max(total, 1)


def conditioning_image(picture: Image.Image, height: int, width: int) -> torch.Tensor:
    """The reference image as the model sees it: resized to cover (height, width), centre-cropped, (3, H, W) in
    [-1, 1] as upstream maps pixels: (p / 255 - 0.5) * 2."""
    pixels = resize_and_crop(picture, height, width)  # (H, W, 3) uint8
    return (torch.tensor(pixels).permute(2, 0, 1).float() / 255 - 0.5) * 2


def speaker_masks(
    src_w: int, src_h: int, height: int, width: int, boxes: list[list[float]] | None, speakers: int
) -> torch.Tensor:
    """(3, H/8, W/8) masks [person 1, person 2, background] at latent resolution.

    One speaker: three all-ones masks (upstream always builds 3). Two speakers: `source_speaker_masks`, which
    follow the image's resize-and-crop (nearest), then go to the latent grid (nearest) and are binarised.
    """
    lat_h, lat_w = height // 8, width // 8
    if speakers == 1:
        return torch.ones(3, lat_h, lat_w)
    cropped = resize_and_crop_masks(source_speaker_masks(src_w, src_h, boxes), height, width)
    return (F.interpolate(cropped[None], size=(lat_h, lat_w), mode="nearest")[0] > 0).float()


def source_speaker_masks(src_w: int, src_h: int, boxes: list[list[float]] | None) -> torch.Tensor:
    """(3, src_h, src_w) masks [person 1, person 2, background] in source-image pixels: the boxes
    `[x_min, y_min, x_max, y_max]` (x horizontal; upstream indexes rows with x, which we do not copy), or by default
    the left and right halves minus a 5% margin; background = neither."""
    masks = torch.zeros(3, src_h, src_w)
    if boxes:
        for person, (x_min, y_min, x_max, y_max) in enumerate(boxes[:2]):
            masks[person, max(0, int(y_min)) : max(0, int(y_max)), max(0, int(x_min)) : max(0, int(x_max))] = 1
    else:
        top, bottom = int(src_h * FACE_SCALE), int(src_h * (1 - FACE_SCALE))
        half = src_w // 2
        left, right = int(half * FACE_SCALE), int(half * (1 - FACE_SCALE))
        masks[0, top:bottom, left:right] = 1
        masks[1, top:bottom, left + half : right + half] = 1
    masks[2] = (masks[:2].sum(0) == 0).float()
    return masks


def resize_and_crop_masks(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, h, w) masks through the image's resize-to-cover and centre crop, nearest-neighbour: (C, height, width)."""
    plan = plan_resize_crop(masks.shape[2], masks.shape[1], height, width)
    resized = F.interpolate(masks[None], size=(plan.resized_h, plan.resized_w), mode="nearest")[0]
    return resized[:, plan.top : plan.top + height, plan.left : plan.left + width]
