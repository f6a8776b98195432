"""`JobContext` for the protocol: stages and progress become events, cancel becomes `JobCancelled`.

Progress is kept monotonic (a lower fraction than one already reported is raised to it) and rate-limited to one
event per `min_interval` seconds (`--progress-interval`; 0 sends every one), except the first and the final
(fraction 1) ones. Without an engine estimate,
the ETA is extrapolated from the time spent so far.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from .contract import JobCancelled, JobContext
from .media.live_stream import INIT_FILE, LiveSegment
from .protocol import STAGES, Event, Progress, Segment, Stage

MIN_PROGRESS_INTERVAL = 0.1  # seconds: about 10 progress events a second at most
ETA_MIN_FRACTION = 0.05  # too early to extrapolate below this
ETA_MIN_SECONDS = 1.0


class ProtocolJobContext(JobContext):
    def __init__(
        self,
        job_id: str,
        send: Callable[[Event], None],
        cancelled: threading.Event,
        min_interval: float = MIN_PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.job_id = job_id
        self._send = send
        self._cancelled = cancelled
        self._min_interval = min_interval
        self._clock = clock
        self._started = clock()
        self._fraction = 0.0
        self._last_sent_at: float | None = None
        self._sent_final = False
        self._clips: int | None = None  # the job's clip count, as the last stage or progress told it

    @property
    def fraction(self) -> float:
        """The highest fraction reported so far."""
        return self._fraction

    def stage(self, stage: str, message: str, clip: int | None = None, clips: int | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        self._clips = clips or self._clips
        self._send(Stage(self.job_id, stage, message, clip, clips))

    def progress(
        self,
        fraction: float,
        step: int | None = None,
        steps: int | None = None,
        clip: int | None = None,
        clips: int | None = None,
        eta_seconds: float | None = None,
    ) -> None:
        self._clips = clips or self._clips
        if math.isfinite(fraction):
            self._fraction = max(self._fraction, min(1.0, max(0.0, fraction)))
        now = self._clock()
        final = self._fraction >= 1.0
        if final and self._sent_final:
            return
        if not final and self._last_sent_at is not None and now - self._last_sent_at < self._min_interval:
            return
        self._last_sent_at = now
        self._sent_final = final
        if eta_seconds is None or not math.isfinite(eta_seconds):
            eta_seconds = self._estimate_eta(now)
        self._send(
            Progress(
                self.job_id,
                round(self._fraction, 4),
                step,
                steps,
                clip,
                clips,
                None if eta_seconds is None else round(max(0.0, eta_seconds), 1),
            )
        )

    def segment_ready(self, segment: LiveSegment) -> None:
        self._send(
            Segment(
                self.job_id,
                segment.index,
                self._clips,
                segment.file,
                INIT_FILE,
                segment.duration_seconds,
                segment.end_seconds,
            )
        )

    def check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise JobCancelled()

    def _estimate_eta(self, now: float) -> float | None:
        elapsed = now - self._started
        if self._fraction >= 1.0:
            return 0.0
        if self._fraction < ETA_MIN_FRACTION or elapsed < ETA_MIN_SECONDS:
            return None
        return elapsed * (1.0 - self._fraction) / self._fraction
