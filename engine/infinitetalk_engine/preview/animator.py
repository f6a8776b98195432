"""Render preview frames: warp the still portrait so the jaw drops, the eyelids close and the head sways.

Only a region around the head is touched; every other pixel is the still image, so the background stays still.
Each effect is a displacement field computed once per job for "full strength" (jaw wide open, eyes closed, unit
head motion); a frame is a weighted sum of those fields, fed to one `cv2.remap` of the head region:

    out(p) = image(p - D(p)),  D = head motion * head weight + mouth * jaw field + blink * eyelid field

Fields fade smoothly to zero, so the warp has no seams. Then a soft dark shade fills the gap the jaw opens
between the lips. No pixels are invented beyond that: this is a preview, not the model.
"""

from __future__ import annotations

import cv2
import numpy as np

from .face_detection import FaceLayout

HEAD_AXES = (0.8, 0.9)  # half-axes of the moving head ellipse, in face widths / heights
HEAD_FADE = 1.5  # the warp fades to zero between 1x and 1.5x the head ellipse
JAW_DROP = 0.10  # jaw travel at full opening, in face heights
JAW_WIDTH = 0.2  # the drop falls off across the face as a Gaussian of this sigma, in face widths
CHIN = 1.02  # chin height below the face box top, in face heights
MOUTH_SHADE = (70, 28, 30)  # colour of the open mouth's inside (RGB)
MOUTH_SHADE_OPACITY = 0.7
MOUTH_HALF_WIDTH = 0.22  # mouth corners from the centre, in face widths


def smoothstep(edge0: float, edge1: float, value: np.ndarray) -> np.ndarray:
    t = np.clip((value - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class FaceAnimator:
    """Frames of one portrait. `render` is called once per video frame with that frame's motion values."""

    def __init__(self, image: np.ndarray, face: FaceLayout):
        self.image = image  # (H, W, 3) uint8, the still frame
        self.face = face
        height, width = image.shape[:2]
        fw, fh = face.width, face.height
        self._head_centre = (face.centre_x, face.y + 0.5 * fh)
        axis_x, axis_y = HEAD_AXES[0] * fw, HEAD_AXES[1] * fh

        # 1. The head region (ROI): where the warp is not zero.
        self.x0 = max(0, int(self._head_centre[0] - HEAD_FADE * axis_x))
        self.x1 = min(width, int(np.ceil(self._head_centre[0] + HEAD_FADE * axis_x)))
        self.y0 = max(0, int(self._head_centre[1] - HEAD_FADE * axis_y))
        self.y1 = min(height, int(np.ceil(self._head_centre[1] + HEAD_FADE * axis_y)))
        xs = np.arange(self.x0, self.x1, dtype=np.float32)
        ys = np.arange(self.y0, self.y1, dtype=np.float32)
        self._grid_x, self._grid_y = np.meshgrid(xs, ys)  # (h_roi, w_roi) absolute pixel coordinates
        gx, gy = self._grid_x, self._grid_y

        # 2. Head motion: rigid translation/roll about the neck, weighted 1 on the head and fading outside.
        radius = np.sqrt(((gx - self._head_centre[0]) / axis_x) ** 2 + ((gy - self._head_centre[1]) / axis_y) ** 2)
        self._head_weight = (1.0 - smoothstep(1.0, HEAD_FADE, radius)).astype(np.float32)
        self._pivot = (face.centre_x, face.y + 1.3 * fh)
        # For the roll: D = angle * (-dy, dx) around the pivot.
        self._head_weight_dx = (self._head_weight * (gx - self._pivot[0])).astype(np.float32)
        self._head_weight_dy = (self._head_weight * (gy - self._pivot[1])).astype(np.float32)

        # 3. Jaw: everything below the lip line moves down (fading out below the chin), and the upper lip lifts a
        #    little. The drop is capped per frame at the distance below the lip line, so the rows of the opened
        #    gap all sample the lip line itself: the gap opens cleanly instead of folding a mirrored lip into it.
        self._jaw_drop = JAW_DROP * fh
        chin_y = face.y + CHIN * fh
        below_lips = (gy >= face.mouth_y).astype(np.float32)
        above_neck = 1.0 - smoothstep(chin_y, chin_y + 0.45 * fh, gy)
        self._jaw = (self._jaw_drop * self._jaw_across(gx) * below_lips * above_neck).astype(np.float32)
        self._gap_limit = np.maximum(gy - face.mouth_y, 0.0).astype(np.float32)
        self._upper_lip = (
            -0.15
            * self._jaw_drop
            * self._jaw_across(gx)
            * np.exp(-0.5 * ((gy - (face.mouth_y - 0.04 * fh)) / (0.03 * fh)) ** 2)
        ).astype(np.float32)

        # 4. Eyelids: the band of lid skin just above each eye stretches down over it (slope < 1, so the warp
        #    never folds); below the eye the field falls back to zero, squeezing the eye into a lash line.
        lids = np.zeros_like(gx)
        for eye in face.eyes:
            box = eye.width  # a Haar eye box: the eye plus some skin around it
            across_eye = np.exp(-(((gx - eye.x) / (0.45 * box)) ** 4))
            closing = smoothstep(eye.y - 0.3 * box, eye.y + 0.1 * box, gy)
            lower_lid = 1.0 - smoothstep(eye.y + 0.1 * box, eye.y + 0.2 * box, gy)
            lids += 0.22 * box * across_eye * closing * lower_lid
        self._lids = lids.astype(np.float32)

    def _jaw_across(self, x: np.ndarray) -> np.ndarray:
        """How much of the jaw drop reaches column `x`: all of it under the mouth, less towards the cheeks."""
        return np.exp(-0.5 * ((x - self.face.centre_x) / (JAW_WIDTH * self.face.width)) ** 2)

    @property
    def region(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the only pixels that ever change."""
        return self.x0, self.y0, self.x1, self.y1

    def render(
        self, mouth: float, blink: float, shift_x: float, shift_y: float, angle: float, out: np.ndarray | None = None
    ) -> np.ndarray:
        """One frame, (H, W, 3) uint8. Shifts are in face widths, `angle` in radians.

        With `out` (a frame that already holds the still image outside `region`), only the region is rewritten:
        rendering a video into one reused buffer skips a full-frame copy per frame.
        """
        fw = self.face.width
        # Sampling maps p - D, where D is this frame's forward displacement (cv2.scaleAdd: a * x + y, one pass).
        map_x = cv2.scaleAdd(self._head_weight, -shift_x * fw, self._grid_x)
        map_x = cv2.scaleAdd(self._head_weight_dy, angle, map_x)
        map_y = cv2.scaleAdd(self._head_weight, -shift_y * fw, self._grid_y)
        map_y = cv2.scaleAdd(self._head_weight_dx, -angle, map_y)
        jaw = np.minimum(self._jaw * np.float32(mouth), self._gap_limit)
        map_y = cv2.scaleAdd(jaw, -1.0, map_y)
        map_y = cv2.scaleAdd(self._upper_lip, -mouth, map_y)
        map_y = cv2.scaleAdd(self._lids, -blink, map_y)
        frame = self.image.copy() if out is None else out
        region = frame[self.y0 : self.y1, self.x0 : self.x1]
        cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, dst=region, borderMode=cv2.BORDER_REPLICATE)
        self._shade_mouth(region, mouth, shift_x, shift_y, angle)
        return frame

    def _shade_mouth(self, region: np.ndarray, mouth: float, shift_x: float, shift_y: float, angle: float) -> None:
        """Darken the gap the jaw opened between the lips (in place, ROI coordinates).

        The gap is the band the jaw field stretched: from the lip line down by `mouth * jaw drop * across(x)`,
        so it is a lens, widest under the mouth's centre. It is shaded most in its middle, least at its edges.
        """
        gap = mouth * self._jaw_drop
        if gap < 1.0:
            return
        face, fw = self.face, self.face.width
        # Where the lip line went with the head motion (the head weight is ~1 at the mouth).
        move_x = shift_x * fw - angle * (face.mouth_y - self._pivot[1])
        half_w = MOUTH_HALF_WIDTH * fw
        x0 = max(int(face.centre_x + move_x - half_w) - self.x0, 0)
        x1 = min(int(face.centre_x + move_x + half_w) + 1 - self.x0, region.shape[1])
        columns = self._grid_x[0, x0:x1]  # (w,)
        top = face.mouth_y + shift_y * fw + angle * (columns - self._pivot[0])  # (w,) lip line per column
        height = gap * self._jaw_across(columns - move_x)  # (w,) gap per column
        y0 = max(int(top.min()) - self.y0, 0)
        y1 = min(int(np.ceil((top + height).max())) + 1 - self.y0, region.shape[0])
        if x1 <= x0 or y1 <= y0:
            return
        rows = self._grid_y[y0:y1, 0][:, None]  # (h, 1)
        depth = np.clip((rows - top[None, :]) / np.maximum(height[None, :], 1e-3), 0.0, 1.0)  # (h, w) 0..1
        corners = 1.0 - smoothstep(0.6 * half_w, half_w, np.abs(columns - (face.centre_x + move_x)))  # (w,)
        alpha = MOUTH_SHADE_OPACITY * min(1.0, 2.0 * mouth) * np.sqrt(np.clip(np.sin(np.pi * depth), 0, 1)) * corners
        patch = region[y0:y1, x0:x1].astype(np.float32)
        shaded = patch * (1.0 - alpha[..., None]) + np.float32(MOUTH_SHADE) * alpha[..., None]
        region[y0:y1, x0:x1] = shaded.astype(np.uint8)
