"""Live playback benchmark: how soon a job's video can be watched, with the preview engine.

Run by `make bench` after the service bench, i.e. `.venv/bin/python bench/live_bench.py --binary
.build/release/infinitetalk`. For speech of 10 s, 60 s and 10 min (the shared test recording, looped), it starts the
server with the preview engine, follows the job on /ws and measures from the job's start (its `status_update` to
`processing`):

  - first segment playable: the first `clip_ready` arrived, and the live playlist and the segment it lists first
    both answered 200 (what a player needs before it can show a picture);
  - job end: the `status_update` to `completed`;
  - their ratio. The goal (issue 11): for 60 s of audio, the first segment is playable at under a fifth of the
    job's time.

One job at a time on an otherwise idle server; numbers are for this machine (the table says how many CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import urllib3  # selenium's dependency, in the project's venv
import websocket  # websocket-client, likewise
from service_process import HOST, ServiceProcess

REPO = Path(__file__).resolve().parent.parent
SHARED_MEDIA = REPO.parent / "shared" / "media"
DEFAULT_DURATIONS = "10,60,600"
RATIO_TARGET = 0.2  # for 60 s of audio
RATIO_TARGET_SECONDS = 60


def preview_server(binary: Path, workdir: Path) -> ServiceProcess:
    """The service binary with the preview engine, one job at a time."""
    arguments = ["--engine", "preview", "--max-concurrent", "1", "--min-free-disk", "0"]
    return ServiceProcess(binary, workdir / "data", workdir / "server.log", arguments)


def speech(path: Path, seconds: float) -> Path:
    """The shared recording looped to `seconds`, as 16 kHz mono WAV (exact length, well under the upload limit)."""
    source = SHARED_MEDIA / "speech-en.wav"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source)]
    subprocess.run([*command, "-t", f"{seconds}", "-ac", "1", "-ar", "16000", str(path)], check=True, timeout=300)
    return path


@dataclass
class Timing:
    seconds_of_audio: float
    clips: int | None
    first_playable: float  # seconds from job start
    job_end: float

    @property
    def ratio(self) -> float:
        return self.first_playable / self.job_end


def get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def first_segment_url(server: ServiceProcess, playlist_url: str) -> str | None:
    """The first segment the live playlist lists, once the playlist answers 200."""
    try:
        with urllib.request.urlopen(server.base + playlist_url, timeout=30) as response:
            lines = response.read().decode().splitlines()
    except urllib.error.HTTPError:
        return None
    segments = [line for line in lines if line and not line.startswith("#")]
    return urllib.parse.urljoin(server.base + playlist_url, segments[0]) if segments else None


def measure_job(server: ServiceProcess, image: Path, audio: Path, seconds: float, timeout: float) -> Timing:
    """Submits one job and follows it on /ws (connected first, so no message is missed) until it completes."""
    socket_url = server.base.replace("http://", "ws://") + "/ws"
    connection = websocket.create_connection(socket_url, timeout=timeout)
    try:
        answer = urllib3.request(
            "POST",
            server.base + "/api/generate",
            fields={"image": (image.name, image.read_bytes()), "audio": (audio.name, audio.read_bytes())},
            timeout=120,
            retries=False,
        )
        body = json.loads(answer.data)
        if answer.status != 200:
            raise RuntimeError(f"job refused: {answer.status} {body}")
        request_id = body["request_id"]
        started = playable = ended = None
        clips = None
        deadline = time.monotonic() + timeout
        while ended is None:
            connection.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                message = json.loads(connection.recv())
            except websocket.WebSocketTimeoutException:
                raise RuntimeError(f"the {seconds:g} s job did not finish within {timeout:.0f} s") from None
            now = time.monotonic()
            if message.get("request_id") != request_id:
                continue
            kind, status = message.get("type"), message.get("status")
            if kind == "status_update" and status == "processing" and started is None:
                started = now
            elif kind == "clip_ready" and playable is None:
                clips = message.get("clips")
                segment = first_segment_url(server, message["playlist_url"])
                if segment and get_ok(segment):
                    playable = time.monotonic()
            elif kind == "status_update" and status == "completed":
                ended = now
            elif kind == "status_update" and status in ("failed", "cancelled"):
                raise RuntimeError(f"the {seconds:g} s job {status}: {message.get('error') or message.get('message')}")
        if started is None or playable is None:
            raise RuntimeError(f"the {seconds:g} s job never reported a playable clip (is live playback built?)")
        return Timing(seconds, clips, playable - started, ended - started)
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=REPO / ".build/release/infinitetalk")
    parser.add_argument("--durations", default=DEFAULT_DURATIONS, help="seconds of audio per job, comma-separated")
    parser.add_argument("--job-timeout", type=float, default=1800, help="give up on a job after this many seconds")
    args = parser.parse_args()
    durations = [float(value) for value in args.durations.split(",") if value]
    if not args.binary.exists():
        print(f"no binary at {args.binary}: run `swift build -c release` first", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="live-bench-") as folder:
        workdir = Path(folder)
        server = preview_server(args.binary, workdir)
        try:
            server.wait_ready(timeout=300)  # the engine imports its libraries first
            timings = []
            for seconds in durations:
                audio = speech(workdir / f"speech-{seconds:g}s.wav", seconds)
                timings.append(measure_job(server, SHARED_MEDIA / "astronaut.png", audio, seconds, args.job_timeout))
                audio.unlink()
        finally:
            server.stop()

    print_table(timings)
    return 0 if all(verdict(timing) != "MISSED" for timing in timings) else 1


def verdict(timing: Timing) -> str:
    if timing.seconds_of_audio != RATIO_TARGET_SECONDS:
        return ""
    return "ok" if timing.ratio < RATIO_TARGET else "MISSED"


def audio_label(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds > 60 and seconds % 60 == 0 else f"{seconds:g} s"


def print_table(timings: list[Timing]) -> None:
    header = ("audio", "clips", "job start -> first segment playable", "job start -> job end", "ratio", "target")
    rows = [
        (
            audio_label(timing.seconds_of_audio),
            str(timing.clips) if timing.clips is not None else "?",
            f"{timing.first_playable:.2f} s",
            f"{timing.job_end:.2f} s",
            f"{timing.ratio:.3f}",
            f"< {RATIO_TARGET} {verdict(timing)}" if verdict(timing) else "-",
        )
        for timing in timings
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"\nlive playback, preview engine, on {os.cpu_count()} CPUs ({HOST}), one job at a time:")
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
