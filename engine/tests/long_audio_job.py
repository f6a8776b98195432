"""One tiny-weights job on a given recording, in a process of its own; prints its frames and peak RSS in KiB (the
long-audio test runs it for 10 s and for 10 minutes). Usage: long_audio_job.py WEIGHTS_DIR AUDIO OUT_DIR"""

import sys
import threading
from pathlib import Path

from test_infinitetalk_e2e import IMAGE

from infinitetalk_engine.contract import EngineOptions, JobParams, JobRequest
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.job_context import ProtocolJobContext

# Upstream's clip length: a 10-minute job is ~210 clips of one step each on the tiny model.
OPTIONS = {"buckets": "16x16", "frame_num": "81", "motion_frames": "9", "max_steps": "1"}


def main(weights: str, audio: str, out: str) -> None:
    engine = InfiniteTalkEngine(EngineOptions(weights=weights, device="cpu", extra=OPTIONS, max_audio_seconds=900))
    engine.load()
    params = JobParams(steps=1, seed=1, color_correction=0.0)
    job = JobRequest("job", str(IMAGE), audio, str(Path(out) / "out.mp4"), params)
    result = engine.run(job, ProtocolJobContext("job", lambda _: None, threading.Event(), min_interval=0))
    print(result.frames, peak_rss_kib())


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, it does not carry over the parent's size from fork)."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


if __name__ == "__main__":
    main(*sys.argv[1:4])
