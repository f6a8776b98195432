"""Read the reference image and fit it to the model's resolution buckets.

InfiniteTalk picks, per tier, the (height, width) bucket whose h/w ratio is nearest the image's (first in table
order on ties), resizes with PIL bilinear so the image covers the bucket (`scale = max(Ht/h, Wt/w)`, each side
`ceil(scale * side)`), then centre-crops (torchvision rounding). See infinitetalk-engine.md §4 and the parity
README §2 "Resolution buckets".
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ..contract import EngineError

# Ratio key (h / w, as upstream writes it) -> (height, width). Upstream's tables, in upstream order.
BUCKETS: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {
        "0.26": (320, 1216),
        "0.38": (384, 1024),
        "0.50": (448, 896),
        "0.67": (512, 768),
        "0.82": (576, 704),
        "1.00": (640, 640),
        "1.22": (704, 576),
        "1.50": (768, 512),
        "1.86": (832, 448),
        "2.00": (896, 448),
        "2.50": (960, 384),
        "2.83": (1088, 384),
        "3.60": (1152, 320),
        "3.80": (1216, 320),
        "4.00": (1280, 320),
    },
    "720p": {
        "0.22": (448, 2048),
        "0.29": (512, 1792),
        "0.36": (576, 1600),
        "0.45": (640, 1408),
        "0.55": (704, 1280),
        "0.63": (768, 1216),
        "0.76": (832, 1088),
        "0.88": (896, 1024),
        "1.00": (960, 960),
        "1.14": (1024, 896),
        "1.31": (1088, 832),
        "1.50": (1152, 768),
        "1.58": (1216, 768),
        "1.82": (1280, 704),
        "1.91": (1344, 704),
        "2.20": (1408, 640),
        "2.30": (1472, 640),
        "2.67": (1536, 576),
        "2.89": (1664, 576),
        "3.62": (1856, 512),
        "3.75": (1920, 512),
    },
}

DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class Bucket:
    key: str  # the table's h/w ratio key, e.g. "0.82"
    height: int
    width: int


@dataclass(frozen=True)
class ResizeCrop:
    """How an image of some size becomes a bucket: resize to (resized_h, resized_w), then crop at (top, left)."""

    resized_h: int
    resized_w: int
    top: int
    left: int
    height: int
    width: int


def file_digest(path: str) -> str:
    """SHA-256 of the picture's bytes: the key under which engines keep what they derived from it (a batch's jobs
    share one portrait)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open JPEG/PNG/WebP/... as RGB, honouring EXIF orientation. Raises `EngineError("bad_image")`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > max_pixels:
                    raise EngineError(
                        "bad_image", f"image is {image.width}x{image.height}, more than {max_pixels} pixels"
                    )
                image.load()
                oriented = ImageOps.exif_transpose(image)
                return oriented.convert("RGB")
    except EngineError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise EngineError("bad_image", f"image could not be read: {exc}") from exc


def choose_bucket(width: int, height: int, resolution: str) -> Bucket:
    """The bucket of `resolution` ("480p"/"720p") whose h/w key is nearest `height / width`."""
    if resolution not in BUCKETS:
        raise EngineError("bad_params", f"unknown resolution {resolution!r}; expected one of {sorted(BUCKETS)}")
    return nearest_bucket(BUCKETS[resolution], width, height)


def nearest_bucket(table: Mapping[str, tuple[int, int]], width: int, height: int) -> Bucket:
    """Upstream's rule on any table (h/w ratio key -> (height, width)): the key nearest `height / width`, the first
    in table order on ties."""
    ratio = height / width
    key = min(table, key=lambda k: abs(float(k) - ratio))  # min keeps the first on ties
    bucket_h, bucket_w = table[key]
    return Bucket(key, bucket_h, bucket_w)


def plan_resize_crop(width: int, height: int, target_h: int, target_w: int) -> ResizeCrop:
    """Cover the target with the smallest upscale/downscale, then centre-crop (torchvision's rounding)."""
    scale = max(target_h / height, target_w / width)
    resized_h, resized_w = math.ceil(scale * height), math.ceil(scale * width)
    top = int(round((resized_h - target_h) / 2.0))
    left = int(round((resized_w - target_w) / 2.0))
    return ResizeCrop(resized_h, resized_w, top, left, target_h, target_w)


def resize_and_crop(image: Image.Image, target_h: int, target_w: int) -> np.ndarray:
    """PIL bilinear resize to cover, then centre crop. Returns (target_h, target_w, 3) uint8 RGB."""
    plan = plan_resize_crop(image.width, image.height, target_h, target_w)
    resized = image.convert("RGB").resize((plan.resized_w, plan.resized_h), Image.BILINEAR)
    pixels = np.asarray(resized)  # (H, W, 3)
    return np.ascontiguousarray(pixels[plan.top : plan.top + target_h, plan.left : plan.left + target_w])


def fit_to_bucket(image: Image.Image, resolution: str) -> tuple[np.ndarray, Bucket]:
    """The image as the model sees it at `resolution`: (H, W, 3) uint8 and the bucket chosen."""
    bucket = choose_bucket(image.width, image.height, resolution)
    return resize_and_crop(image, bucket.height, bucket.width), bucket
