"""`make bench-engine`: real-time factor and peak memory of the preview engine for 10 s, 60 s and 10 min of audio.

Each length runs in a fresh engine process, driven through the JSON-lines protocol exactly as the service does;
the peak RSS is the process's own maximum (getrusage via wait4), so it includes Python and its libraries.
RTF = processing seconds / audio seconds (lower is better; 0.2 = 5x faster than real time). On a shared machine
wall time depends on the neighbours, so the job's own CPU time per audio second is printed too: below 0.2 means
5x real time even on one free core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def make_audio(seconds: float, folder: Path) -> Path:
    """`seconds` of the shared English speech, looped, as 16 kHz mono WAV."""
    path = folder / f"speech_{seconds:g}s.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-stream_loop",
            "-1",
            "-i",
            str(SHARED / "media" / "speech-en.wav"),
            "-t",
            str(seconds),
            "-ac",
            "1",
            "-ar",
            "16000",
            str(path),
        ],
        check=True,
    )
    return path


def read_event(process: subprocess.Popen, wanted: set[str]) -> dict:
    for line in process.stdout:
        event = json.loads(line)
        if event["type"] in wanted:
            return event
    raise RuntimeError(f"engine exited before {wanted}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def run_one(image: Path, audio: Path, output: Path, resolution: str, extra_args: list[str]) -> dict:
    process = subprocess.Popen(
        [sys.executable, "-m", "infinitetalk_engine", "--engine", "preview", "--max-jobs", "1", *extra_args],
        cwd=REPO / "engine",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    read_event(process, {"ready"})
    idle_rss = rss_mb(process.pid)
    cpu_at_ready = cpu_seconds(process.pid)
    job = {
        "type": "job",
        "job_id": "bench",
        "image_path": str(image),
        "audio_path": str(audio),
        "output_path": str(output),
        "params": {"resolution": resolution, "seed": 1},
    }
    started = time.monotonic()
    process.stdin.write(json.dumps(job) + "\n")
    process.stdin.flush()
    outcome = read_event(process, {"done", "error"})
    wall = time.monotonic() - started
    job_cpu = cpu_seconds(process.pid) - cpu_at_ready
    process.stdin.write('{"type": "shutdown"}\n')
    process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    if outcome["type"] != "done":
        raise RuntimeError(f"job failed: {outcome}")
    return {
        "done": outcome,
        "wall": wall,
        "idle_rss": idle_rss,
        "peak_rss": usage.ru_maxrss / 1024,
        "job_cpu": job_cpu,
        "size_mb": output.stat().st_size / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,60,600", help="audio lengths, comma separated (default 10,60,600)")
    parser.add_argument("--resolution", default="480p", choices=["480p", "720p"])
    parser.add_argument("--image", type=Path, default=SHARED / "media" / "astronaut.png")
    parser.add_argument("--engine-args", default="", help="extra engine options, e.g. '--video-preset veryfast'")
    args = parser.parse_args()

    print(
        f"preview engine, {args.resolution}, image {args.image.name}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    header = [
        "audio s",
        "frames",
        "size",
        "wall s",
        "RTF",
        "x real time",
        "job CPU s",
        "CPU s / audio s",
        "idle RSS MB",
        "peak RSS MB",
        "MP4 MB",
    ]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seconds in [float(s) for s in args.seconds.split(",")]:
            audio = make_audio(seconds, Path(folder))
            result = run_one(args.image, audio, Path(folder) / "out.mp4", args.resolution, args.engine_args.split())
            done = result["done"]
            rows.append(
                [
                    f"{seconds:g}",
                    str(done["frames"]),
                    f"{done['width']}x{done['height']}",
                    f"{done['seconds']:.1f}",
                    f"{done['seconds'] / seconds:.3f}",
                    f"{seconds / done['seconds']:.1f}",
                    f"{result['job_cpu']:.1f}",
                    f"{result['job_cpu'] / seconds:.3f}",
                    f"{result['idle_rss']:.0f}",
                    f"{result['peak_rss']:.0f}",
                    f"{result['size_mb']:.1f}",
                ]
            )
            print(f"  {seconds:g} s done", file=sys.stderr, flush=True)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(f"load average {os.getloadavg()[0]:.1f} at end; wall times include waiting for other processes' CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
