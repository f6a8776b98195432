"""`make bench-shared`: what a batch saves by encoding its shared portrait once, on the tiny random-weight engine.

Runs three one-clip jobs with the same portrait on one in-process InfiniteTalk engine (tiny weights, CPU) and prints
each job's time and the time spent in the portrait's encodings (CLIP + VAE reference latents): the first job pays
them, the next ones find them cached. Tiny models make every figure small; on the full-size model the VAE pass over
81 frames is the part saved (not measured here: no GPU). Then the same with the preview engine, whose shared work is
the portrait's analysis (fit to the bucket, face detection), on the shared photograph and speech.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "engine" / "tests"))

from in_process_engine import run_tiny_job, tiny_engine  # noqa: E402


def timed(method, spent: list[float]):
    """`method`, recording the seconds each call takes in `spent`."""

    def call(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    return call


def preview() -> None:
    from infinitetalk_engine.contract import EngineOptions, JobParams, JobRequest
    from infinitetalk_engine.job_context import ProtocolJobContext
    from infinitetalk_engine.preview.engine import PreviewEngine

    media = REPO.parent / "shared" / "media"
    folder = Path(tempfile.mkdtemp(prefix="shared-bench-preview-"))
    engine = PreviewEngine(EngineOptions())
    engine.load()
    spent: list[float] = []
    engine._portrait = timed(engine._portrait, spent)
    print("preview engine (astronaut.png, speech-en.wav)")
    print("job  seconds  portrait analysis (ms)")
    for index in range(3):
        job = JobRequest(
            f"j{index}", str(media / "astronaut.png"), str(media / "speech-en.wav"), str(folder / f"{index}.mp4"),
            JobParams(seed=1),
        )  # fmt: skip
        started = time.perf_counter()
        engine.run(job, ProtocolJobContext(job.job_id, lambda _: None, threading.Event(), min_interval=0))
        print(f"{index + 1:>3}  {time.perf_counter() - started:7.3f}  {spent[-1] * 1000:10.2f}")


def main() -> None:
    tiny()
    preview()


def tiny() -> None:
    folder = Path(tempfile.mkdtemp(prefix="shared-bench-"))
    engine = tiny_engine(folder / "weights")
    spent: list[float] = []
    engine._encode_reference = timed(engine._encode_reference, spent)
    run_tiny_job(engine, folder, seed=1)  # warm-up (imports, first allocations)
    engine._image_cache.clear()
    spent.clear()
    print("tiny InfiniteTalk engine")
    print("job  seconds  portrait encodings (ms)")
    for index in range(3):
        started = time.perf_counter()
        run_tiny_job(engine, folder, seed=1)
        print(f"{index + 1:>3}  {time.perf_counter() - started:7.3f}  {spent[-1] * 1000:10.2f}")


if __name__ == "__main__":
    main()
