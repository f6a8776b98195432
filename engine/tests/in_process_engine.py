"""The real infinitetalk engine in this process, on tiny random weights: for tests that reach inside a job (spy on
what it encodes, inject a failure into one phase) where the protocol tests only see events."""

from __future__ import annotations

import threading
from pathlib import Path

from test_infinitetalk_e2e import IMAGE, write_wav
from tiny_weights import write_tiny_weights

from infinitetalk_engine.contract import EngineOptions, JobParams, JobRequest, JobResult
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.job_context import ProtocolJobContext

# One tiny bucket and 9-frame clips: a job takes a second or two on the CPU.
TINY_JOB_OPTIONS = {"buckets": "32x48", "frame_num": "9", "motion_frames": "5"}


def tiny_engine(folder: Path) -> InfiniteTalkEngine:
    engine = InfiniteTalkEngine(
        EngineOptions(weights=str(write_tiny_weights(folder)), device="cpu", extra=TINY_JOB_OPTIONS)
    )
    engine.load()
    return engine


def run_tiny_job(engine: InfiniteTalkEngine, folder: Path, seconds: float = 0.2, **params) -> JobResult:
    """One job of `seconds` of audio (0.2 s: one clip) and one step (plus `params`)."""
    audio = write_wav(folder / "speech.wav", seconds)
    job = JobRequest("job", str(IMAGE), str(audio), str(folder / "out.mp4"), JobParams(**{"steps": 1, **params}))
    return engine.run(job, ProtocolJobContext("job", lambda _: None, threading.Event(), min_interval=0))
