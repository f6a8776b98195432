"""`make bench-shared`: what a batch saves by encoding its shared portrait once, on the tiny random-weight engine.

Runs three one-clip jobs with the same portrait on one in-process InfiniteTalk engine (tiny weights, CPU) and prints
each job's time and the time spent in the portrait's encodings (CLIP + VAE reference latents): the first job pays
them, the next ones find them cached. Tiny models make every figure small; on the full-size model the VAE pass over
81 frames is the part saved (not measured here: no GPU). The preview engine has no encoders, so nothing to share.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "engine" / "tests"))

from in_process_engine import run_tiny_job, tiny_engine  # noqa: E402


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="shared-bench-"))
    engine = tiny_engine(folder / "weights")
    encode = engine._encode_reference
    spent: list[float] = []

    def timed_encode(*args, **kwargs):
        started = time.perf_counter()
        try:
            return encode(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    engine._encode_reference = timed_encode
    run_tiny_job(engine, folder, seed=1)  # warm-up (imports, first allocations)
    engine._image_cache.clear()
    spent.clear()
    print("job  seconds  portrait encodings (ms)")
    for index in range(3):
        started = time.perf_counter()
        run_tiny_job(engine, folder, seed=1)
        print(f"{index + 1:>3}  {time.perf_counter() - started:7.3f}  {spent[-1] * 1000:10.2f}")


if __name__ == "__main__":
    main()
