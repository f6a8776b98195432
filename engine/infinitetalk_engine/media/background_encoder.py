"""Clips encoded into the MP4 on a thread of their own, while the next clip is sampled.

H.264 encoding of a clip is CPU work (hundreds of milliseconds for 72 frames at 480p); the sampler's is GPU work. The
generation loop hands each finished clip's frames (already uint8 in host memory) to `submit` and goes on sampling;
the encoder thread writes them and marks the clip's end (its live segment). At most `depth` clips wait, so host
memory stays bounded. An encoding error is raised in the generation loop at the next `submit` or at `finish`, and a
job that stops early (cancel, error) waits for the thread before its output is removed.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from .video import Mp4Writer

_DONE = object()


class BackgroundClipEncoder:
    def __init__(self, writer: Mp4Writer, depth: int = 1):
        self.writer = writer
        self._clips: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name="clip-encoder", daemon=True)
        self._thread.start()

    def submit(self, frames: np.ndarray) -> None:
        """Queue one clip's frames (waits while `depth` clips are already waiting)."""
        self._raise_if_failed()
        self._clips.put(frames)

    def finish(self) -> None:
        """Wait until every queued clip is written; raise the encoder's error, if any."""
        self._stop()
        self._raise_if_failed()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._clips.put(_DONE)
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _encode(self) -> None:
        while (frames := self._clips.get()) is not _DONE:
            if self._error is not None:
                continue  # drain what is queued so the producer never blocks
            try:
                self.writer.write(frames)
                self.writer.end_clip()
            except BaseException as exc:  # handed to the generation loop
                self._error = exc

    def __enter__(self) -> BackgroundClipEncoder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop()
        if exc_type is None:
            self._raise_if_failed()


class InlineClipEncoder:
    """The same interface, encoding in the caller's thread (`encode_in_background=off`)."""

    def __init__(self, writer: Mp4Writer):
        self.writer = writer

    def submit(self, frames: np.ndarray) -> None:
        self.writer.write(frames)
        self.writer.end_clip()

    def finish(self) -> None:
        return None

    def __enter__(self) -> InlineClipEncoder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        return None
