"""Where the face, eyes and mouth are in a portrait: OpenCV's bundled Haar cascades plus simple face geometry.

Used by the preview engine to know which pixels to animate. Haar cascades ship inside opencv-python-headless<5
(`cv2.data.haarcascades`), so no model file is downloaded. When no face is found the caller falls back to
`centre_layout` (a face-sized box in the middle of the image).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

DETECTION_MAX_SIDE = 480  # detect on a downscaled copy: Haar cost grows with area, accuracy barely changes
MIN_FACE_FRACTION = 0.08  # smallest face searched, as a fraction of the image's shorter side


@dataclass(frozen=True)
class Eye:
    x: float  # centre, pixels
    y: float
    width: float  # of the Haar eye box (the eye plus some skin around it)


@dataclass(frozen=True)
class FaceLayout:
    """A face box (Haar convention: roughly brows to lower lip/chin) plus the eyes and the line between the lips."""

    x: float
    y: float
    width: float
    height: float
    eyes: tuple[Eye, Eye]
    mouth_y: float  # the row between the lips
    detected: bool  # False: a guess in the image centre

    @property
    def centre_x(self) -> float:
        return self.x + self.width / 2


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's bundled cascade {name} could not be loaded")
    return cascade


def detect_face_box(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    """The most certain frontal face as (x, y, w, h) in pixels of `rgb` (H, W, 3), or None."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, DETECTION_MAX_SIDE / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    min_side = max(20, int(MIN_FACE_FRACTION * min(gray.shape)))
    faces, neighbours = _cascade("haarcascade_frontalface_default.xml").detectMultiScale2(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    if len(faces) == 0:
        return None
    # The detection most windows agree on: the largest box is sometimes a false positive on clothing or background.
    x, y, w, h = faces[int(np.argmax(neighbours))]
    return float(x / scale), float(y / scale), float(w / scale), float(h / scale)


def find_face_layout(rgb: np.ndarray) -> FaceLayout | None:
    """Face box, eyes and lip line of the most certain face in `rgb` (H, W, 3) uint8, or None if there is no face."""
    box = detect_face_box(rgb)
    if box is None:
        return None
    return _layout_from_box(rgb, *box, detected=True)


def centre_layout(rgb: np.ndarray) -> FaceLayout:
    """A face-sized box in the middle of the image, for images without a detectable face."""
    height, width = rgb.shape[:2]
    side = 0.3 * min(height, width)
    x, y = (width - side) / 2, (height - side) / 2
    return FaceLayout(x, y, side, side, _default_eyes(x, y, side, side), y + 0.82 * side, detected=False)


def _layout_from_box(rgb: np.ndarray, x: float, y: float, w: float, h: float, detected: bool) -> FaceLayout:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    eyes = _detect_eyes(gray, x, y, w, h) or _default_eyes(x, y, w, h)
    return FaceLayout(x, y, w, h, eyes, _find_lip_line(rgb, x, y, w, h), detected)


def _default_eyes(x: float, y: float, w: float, h: float) -> tuple[Eye, Eye]:
    """Where eyes sit in a Haar face box on average."""
    return Eye(x + 0.29 * w, y + 0.37 * h, 0.28 * w), Eye(x + 0.71 * w, y + 0.37 * h, 0.28 * w)


def _detect_eyes(gray: np.ndarray, x: float, y: float, w: float, h: float) -> tuple[Eye, Eye] | None:
    """Two eyes in the upper part of the face box, one on each side, or None if that is not what was found."""
    top, bottom = int(y + 0.15 * h), int(y + 0.6 * h)
    left, right = int(x), int(x + w)
    region = gray[max(top, 0) : bottom, max(left, 0) : right]
    if region.size == 0:
        return None
    min_side = max(8, int(0.12 * w))
    found = _cascade("haarcascade_eye.xml").detectMultiScale(region, 1.1, 5, minSize=(min_side, min_side))
    centres = [
        Eye(float(left + ex + ew / 2), float(top + ey + eh / 2), float(ew)) for ex, ey, ew, eh in found if ew < 0.4 * w
    ]
    left_eyes = [e for e in centres if e.x < x + 0.5 * w]
    right_eyes = [e for e in centres if e.x >= x + 0.5 * w]
    if not left_eyes or not right_eyes:
        return None
    # The largest on each side; Haar sometimes also fires on eyebrows or nostrils, which are smaller.
    return max(left_eyes, key=lambda e: e.width), max(right_eyes, key=lambda e: e.width)


def _find_lip_line(rgb: np.ndarray, x: float, y: float, w: float, h: float) -> float:
    """The middle of the lips: the redness-weighted centre of the rows where the mouth should be.

    Lips are redder than the skin around them (Lab a*), for closed and smiling mouths alike; the darkest row is
    not robust (nostrils, teeth). Falls back to the average mouth height of a Haar face box.
    """
    default = y + 0.82 * h
    top, bottom = max(int(y + 0.70 * h), 0), min(int(y + 0.97 * h), rgb.shape[0])
    left, right = max(int(x + 0.35 * w), 0), min(int(x + 0.65 * w), rgb.shape[1])
    region = rgb[top:bottom, left:right]
    if region.shape[0] < 5 or region.shape[1] < 3:
        return default
    redness = cv2.cvtColor(region, cv2.COLOR_RGB2LAB)[:, :, 1].astype(np.float32).mean(axis=1)  # (rows,)
    weights = np.clip(redness - np.median(redness), 0, None)
    if weights.sum() < 1.0:
        return default
    return float(top + (weights * np.arange(len(weights))).sum() / weights.sum())
