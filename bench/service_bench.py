"""Service benchmark: uploads, WebSocket fan-out and status throughput, on loopback only.

Run as `make bench`, i.e. `.venv/bin/python bench/service_bench.py --binary .build/release/infinitetalk`.

It starts the release server on a free loopback port with a fake engine (written below) that accepts jobs and never
finishes them, so jobs pile up in the queue, then measures:

  (a) N concurrent uploads of a ~50 MB WAV (+ the shared portrait): every upload is streamed whole and accepted;
      the server's RSS growth (VmRSS from /proc/<pid>/status, sampled every 20 ms) must stay under 100 MB.
  (b) C WebSocket clients on /ws: a broadcast is triggered by cancelling a queued job (`DELETE /api/requests/{id}`,
      cheap: no upload, no probe); latency = the moment each client reads the first message about it minus the moment
      the request was sent. Target p99 < 50 ms. Clients are spread over a few processes (one Python process cannot read
      1,000 sockets in 50 ms by itself); they share CLOCK_MONOTONIC, so timestamps compare across processes.
  (c) `GET /api/status/{id}` with wrk for ~10 s. Target >= 10,000 req/s.
  (d) cancelling the running job: time until the next queued job is `processing` (its engine slot freed). Target
      < 2 s. The fake engine stops at once, so this is the service's share; the preview engine checks for a
      cancel between frames (a few ms).

Everything is bounded in time and cleaned up (server process group, temporary data directory). The machine this
runs on is small and shared (2 cores): numbers are for that machine, and the table says which targets were met.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from service_process import HOST, ServiceProcess

REPO = Path(__file__).resolve().parent.parent
SHARED_MEDIA = REPO.parent / "shared" / "media"

# A fake engine speaking docs/engine-protocol.md: ready at once, takes jobs, never finishes them (so they pile up),
# answers heartbeats and cancels, and leaves on shutdown.
FAKE_ENGINE = r"""
import json, sys
def send(message):
    sys.stdout.write(json.dumps(message) + "\n"); sys.stdout.flush()
send({"type": "hello", "protocol_version": 1, "engine": "bench-fake", "engine_version": "0.0.0",
      "capabilities": {"resolutions": ["480p", "720p"], "fps": 25, "max_concurrent_jobs": 1, "device": "cpu",
                       "is_preview": True, "two_speakers": False, "default_steps": 4, "max_steps": 50}})
send({"type": "ready", "load_seconds": 0.0})
active = set()
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    kind = message.get("type")
    if kind == "job":
        active.add(message["job_id"])
        send({"type": "stage", "job_id": message["job_id"], "stage": "generating", "message": "bench: never ends"})
    elif kind == "cancel" and message.get("job_id") in active:
        active.discard(message["job_id"])
        send({"type": "error", "job_id": message["job_id"], "code": "cancelled", "message": "cancelled",
              "retryable": False})
    elif kind == "heartbeat":
        send({"type": "heartbeat", "seq": message["seq"], "active_jobs": sorted(active)})
    elif kind == "shutdown":
        for job_id in sorted(active):
            send({"type": "error", "job_id": job_id, "code": "cancelled", "message": "shutdown", "retryable": False})
        send({"type": "bye"})
        break
"""


# MARK: - Server


class Server(ServiceProcess):
    """The release binary with the fake engine."""

    def __init__(self, binary: Path, data_dir: Path, max_queue_size: int, max_connections: int):
        engine = data_dir / "fake_engine.py"
        engine.write_text(FAKE_ENGINE)
        arguments = ["--engine-command", f"{sys.executable} {engine}", "--max-queue-size", str(max_queue_size)]
        # Every WebSocket client of (b) holds a connection: the default cap (512) would hold the rest back.
        arguments += ["--max-connections", str(max_connections)]
        super().__init__(binary, data_dir / "data", data_dir / "server.log", arguments)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_json(method: str, url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as response:
        return json.loads(response.read())


# MARK: - Multipart uploads over raw asyncio streams (the file is streamed from disk, never held in memory)


def multipart_parts(image: Path, audio: Path, boundary: str) -> list[bytes | Path]:
    def header(name: str, filename: str, content_type: str) -> bytes:
        return (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()

    return [
        header("image", image.name, "image/png"),
        image,
        b"\r\n",
        header("audio", audio.name, "audio/wav"),
        audio,
        b"\r\n",
        f'--{boundary}\r\nContent-Disposition: form-data; name="steps"\r\n\r\n4\r\n--{boundary}--\r\n'.encode(),
    ]


async def post_multipart(port: int, parts: list[bytes | Path], boundary: str) -> tuple[int, dict]:
    length = sum(part.stat().st_size if isinstance(part, Path) else len(part) for part in parts)
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        (
            f"POST /api/generate HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {length}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    for part in parts:
        if isinstance(part, Path):
            with part.open("rb") as file:
                while chunk := file.read(256 * 1024):
                    writer.write(chunk)
                    await writer.drain()
        else:
            writer.write(part)
    await writer.drain()
    status, body = await read_http_response(reader)
    writer.close()
    return status, body


async def read_http_response(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
    body = await reader.readexactly(int(match.group(1))) if match else await reader.read()
    return status, json.loads(body) if body else {}


async def measure_uploads(server: Server, image: Path, audio: Path, count: int) -> dict:
    """(a) `count` uploads at once; RSS sampled every 20 ms until all have answered."""
    baseline = server.rss_kib()
    peak = baseline
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.rss_kib())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    boundary = "bench" + uuid.uuid4().hex
    parts = multipart_parts(image, audio, boundary)
    started = time.monotonic()
    results = await asyncio.gather(*(post_multipart(server.port, parts, boundary) for _ in range(count)))
    elapsed = time.monotonic() - started
    done.set()
    await sampler
    accepted = [body["request_id"] for status, body in results if status == 200]
    failures = [f"{status} {body.get('error', {}).get('code')}" for status, body in results if status != 200]
    return {
        "accepted": accepted,
        "failures": failures,
        "seconds": elapsed,
        "rss_baseline_mib": baseline / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_growth_mib": (peak - baseline) / 1024,
        "megabytes": count * sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in parts) / 1e6,
    }


# MARK: - A minimal WebSocket client (RFC 6455: handshake, unmasked server frames, masked pong/close)
#
# A bare asyncio.Protocol: frames are parsed straight from the bytes each read brings, with no stream reader and
# no await per frame, so the client processes (on the same 2 cores as the server) spend as little CPU as possible
# per message. A message's receipt time is taken when its bytes are read from the socket.


class BenchSocket(asyncio.Protocol):
    """One WebSocket client: does the upgrade, then hands each complete text message to `on_message(bytes, t)`."""

    def __init__(self, port: int, on_message):
        self.port = port
        self.on_message = on_message
        self.buffer = bytearray()
        self.fragments = b""
        self.upgraded = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc):
        if not self.upgraded.done():
            self.upgraded.set_exception(RuntimeError("WebSocket connection lost during the upgrade"))

    def data_received(self, data: bytes):
        now = time.monotonic()
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self.upgraded.set_exception(RuntimeError(f"WebSocket upgrade refused: {head[:80]!r}"))
                return
            self.upgraded.set_result(None)
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length, header = int.from_bytes(buffer[offset + 2 : offset + 4], "big"), 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length, header = int.from_bytes(buffer[offset + 2 : offset + 10], "big"), 10
            if len(buffer) - offset < header + length:
                break
            payload = bytes(buffer[offset + header : offset + header + length])
            offset += header + length
            opcode = first & 0x0F
            if opcode == 0x9:  # ping -> masked pong
                mask = os.urandom(4)
                self.transport.write(
                    bytes([0x8A, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                )
            elif opcode == 0x8:
                self.transport.close()
                break
            elif opcode in (0x1, 0x0):
                self.fragments += payload
                if first & 0x80:
                    message, self.fragments = self.fragments, b""
                    self.on_message(message, now)
        del buffer[:offset]


def websocket_worker(port: int, clients: int, cancelled_ids: list[str], ready_queue, result_queue) -> None:
    """One client process: `clients` sockets. For each round (one cancelled job), each socket records when it read
    the first message about the cancel (`status_update` of that job, or a `queue_update` without it) and when it read
    the `queue_update` without it."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        first: list[list[float]] = [[] for _ in cancelled_ids]
        queue: list[list[float]] = [[] for _ in cancelled_ids]
        markers = [job_id.encode() for job_id in cancelled_ids]
        connected = loop.create_future()
        finished = loop.create_future()
        remaining = {"snapshots": clients, "listening": clients}

        def make_listener():
            # Per socket: the snapshot on connect, then one round per cancelled job.
            state = {"snapshot": False, "round": 0, "seen_first": False}

            def on_message(message: bytes, now: float) -> None:
                if not state["snapshot"]:
                    state["snapshot"] = True
                    remaining["snapshots"] -= 1
                    if remaining["snapshots"] == 0 and not connected.done():
                        connected.set_result(None)
                    return
                round_index = state["round"]
                if round_index >= len(markers):
                    return
                marker = markers[round_index]
                is_queue_update = b'"queue_update"' in message and marker not in message
                if not state["seen_first"] and (
                    is_queue_update or (b'"status_update"' in message and marker in message)
                ):
                    first[round_index].append(now)
                    state["seen_first"] = True
                if is_queue_update:
                    queue[round_index].append(now)
                    state["round"], state["seen_first"] = round_index + 1, False
                    if state["round"] == len(markers):
                        remaining["listening"] -= 1
                        if remaining["listening"] == 0 and not finished.done():
                            finished.set_result(None)

            return on_message

        sockets = []
        for _ in range(clients):
            _, protocol = await loop.create_connection(lambda: BenchSocket(port, make_listener()), HOST, port)
            await protocol.upgraded
            sockets.append(protocol)
        await asyncio.wait_for(connected, timeout=120)
        ready_queue.put(clients)
        with contextlib.suppress(asyncio.TimeoutError):  # missing receipts are counted by the caller
            await asyncio.wait_for(finished, timeout=120)
        for protocol in sockets:
            protocol.transport.close()
        result_queue.put((first, queue))

    asyncio.run(main())


def measure_websockets(server: Server, clients: int, processes: int, queued_ids: list[str]) -> dict:
    """(b) every round cancels one queued job; each client's latency to the resulting queue_update."""
    cancelled_ids = queued_ids[:5]
    rounds = len(cancelled_ids)
    context = multiprocessing.get_context("fork")
    ready_queue, result_queue = context.Queue(), context.Queue()
    per_process = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    workers = [
        context.Process(
            target=websocket_worker, args=(server.port, n, cancelled_ids, ready_queue, result_queue), daemon=True
        )
        for n in per_process
        if n > 0
    ]
    for worker in workers:
        worker.start()
    connected = sum(ready_queue.get(timeout=120) for _ in workers)
    time.sleep(1.0)  # let every process settle into reading

    sent_at = []
    cpu_before = server.cpu_seconds()
    for job_id in cancelled_ids:
        sent_at.append(time.monotonic())
        request_json("DELETE", f"{server.base}/api/requests/{job_id}")
        time.sleep(0.5)  # one broadcast at a time
    cpu_per_round_ms = (server.cpu_seconds() - cpu_before) / rounds * 1000
    receipts = [result_queue.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    def latencies(kind: int) -> tuple[list[float], int]:
        values, missing = [], 0
        for round_index, start in enumerate(sent_at):
            seen = [t for process_receipts in receipts for t in process_receipts[kind][round_index]]
            missing += connected - len(seen)
            values += [(t - start) * 1000 for t in seen]
        return sorted(values), missing

    first, first_missing = latencies(0)
    queue, queue_missing = latencies(1)
    return {
        "clients": connected,
        "rounds": rounds,
        "missing": max(first_missing, queue_missing),
        "server_cpu_ms": cpu_per_round_ms,
        "first_p50_ms": percentile(first, 50),
        "first_p99_ms": percentile(first, 99),
        "first_max_ms": first[-1] if first else float("nan"),
        "queue_p50_ms": percentile(queue, 50),
        "queue_p99_ms": percentile(queue, 99),
        "queue_max_ms": queue[-1] if queue else float("nan"),
    }


def measure_cancel(server: Server, running: str, waiting: str) -> float:
    """(d) seconds from DELETE of the running job until the waiting one is `processing` (its slot was freed)."""
    started = time.monotonic()
    request_json("DELETE", f"{server.base}/api/requests/{running}")
    while request_json("GET", f"{server.base}/api/status/{waiting}")["status"] != "processing":
        if time.monotonic() - started > 30:
            return float("inf")
        time.sleep(0.005)
    return time.monotonic() - started


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


# MARK: - Status throughput


def measure_throughput(server: Server, path: str, seconds: int, connections: int) -> dict:
    """(c) wrk against GET `path`."""
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", server.base + path],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rate = re.search(r"Requests/sec:\s*([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "requests_per_second": float(rate.group(1)) if rate else float("nan"),
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


# MARK: - Media


def make_tone(path: Path, seconds: float, hz: int, rate: int) -> Path:
    """A 16-bit mono sine tone as a WAV file."""
    tone = f"sine=frequency={hz}:sample_rate={rate}:duration={seconds:.3f}"
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", tone, "-ac", "1", "-c:a", "pcm_s16le"]
    subprocess.run([*command, str(path)], check=True, timeout=300)
    return path


def make_wav(path: Path, target_bytes: int) -> None:
    """A 44.1 kHz tone just under `target_bytes` (50 MB: ~590 s, inside the 600 s limit)."""
    make_tone(path, (target_bytes - 1024) / (44100 * 2), hz=220, rate=44100)


def small_job_parts(directory: Path) -> tuple[Path, Path]:
    return SHARED_MEDIA / "astronaut.png", make_tone(directory / "short.wav", 1, hz=330, rate=16000)


# MARK: - Main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, default=REPO / ".build/release/infinitetalk")
    parser.add_argument("--uploads", type=int, default=20, help="concurrent uploads in (a)")
    parser.add_argument("--upload-mb", type=float, default=50, help="size of each uploaded WAV in MB (10^6 bytes)")
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients in (b)")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--wrk-connections", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: uploads,websocket,status,cancel")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    if not args.binary.exists():
        print(f"no binary at {args.binary}: run `swift build -c release` first", file=sys.stderr)
        return 2
    # 1,000 sockets on each side: raise the open-files limit (the server inherits it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536, hard))

    workdir = Path(tempfile.mkdtemp(prefix="service-bench-"))
    server = None
    rows: list[tuple[str, str, str, str]] = []
    try:
        image, short_audio = small_job_parts(workdir)
        server = Server(
            args.binary, workdir, max_queue_size=max(1000, args.uploads + 50), max_connections=args.clients + 100
        )
        server.wait_ready(timeout=60)
        boundary = "bench" + uuid.uuid4().hex
        small_parts = multipart_parts(image, short_audio, boundary)

        # Jobs to cancel in (b) and to query in (c): the fake engine takes the first and keeps it forever.
        queued = []
        for _ in range(8):
            status, body = asyncio.run(post_multipart(server.port, small_parts, boundary))
            if status != 200:
                raise RuntimeError(f"small upload refused: {status} {body}")
            queued.append(body["request_id"])

        if "uploads" not in skip:
            big_audio = workdir / "big.wav"
            make_wav(big_audio, int(args.upload_mb * 1e6))
            result = asyncio.run(measure_uploads(server, image, big_audio, args.uploads))
            big_audio.unlink()
            rows.append(
                (
                    f"(a) {args.uploads} concurrent uploads of {args.upload_mb:g} MB: accepted",
                    f"{len(result['accepted'])}/{args.uploads}"
                    + (f" ({', '.join(sorted(set(result['failures'])))})" if result["failures"] else ""),
                    f"{args.uploads}",
                    verdict(len(result["accepted"]) == args.uploads),
                )
            )
            rows.append(
                (
                    "(a) server RSS growth (peak - before)",
                    f"{result['rss_growth_mib']:.1f} MiB ({result['rss_baseline_mib']:.0f} -> "
                    f"{result['rss_peak_mib']:.0f})",
                    "< 100 MiB",
                    verdict(result["rss_growth_mib"] < 100),
                )
            )
            rows.append(
                (
                    "(a) time for all uploads (incl. decoding the audio)",
                    f"{result['seconds']:.1f} s ({result['megabytes'] / result['seconds']:.1f} MB/s)",
                    "-",
                    "",
                )
            )

        if "websocket" not in skip:
            # Cancel from the back of the queue; the job the engine holds (queued[0]) stays for (c).
            result = measure_websockets(server, args.clients, args.client_processes, list(reversed(queued[1:])))
            rows.append(
                (
                    f"(b) {result['clients']} WebSocket clients x {result['rounds']} broadcasts: missed",
                    str(result["missing"]),
                    "0",
                    verdict(result["missing"] == 0),
                )
            )
            rows.append(
                (
                    "(b) first broadcast about it (status_update) p50 / p99 / max",
                    f"{result['first_p50_ms']:.1f} / {result['first_p99_ms']:.1f} / {result['first_max_ms']:.1f} ms",
                    "p99 < 50 ms",
                    verdict(result["first_p99_ms"] < 50),
                )
            )
            rows.append(
                (
                    "(b) the queue_update after it p50 / p99 / max",
                    f"{result['queue_p50_ms']:.1f} / {result['queue_p99_ms']:.1f} / {result['queue_max_ms']:.1f} ms",
                    "-",
                    "",
                )
            )
            rows.append(
                (
                    "(b) server CPU per cancel (its broadcasts to every client)",
                    f"{result['server_cpu_ms']:.0f} ms",
                    "-",
                    "",
                )
            )

        if "status" not in skip:
            result = measure_throughput(server, f"/api/status/{queued[0]}", args.wrk_seconds, args.wrk_connections)
            rows.append(
                (
                    f"(c) GET /api/status/{{id}}, wrk {args.wrk_connections} connections, {args.wrk_seconds} s",
                    f"{result['requests_per_second']:,.0f} req/s (p99 {result['p99_ms']:.1f} ms"
                    f", non-2xx {result['non_2xx']})",
                    ">= 10,000 req/s",
                    verdict(result["requests_per_second"] >= 10_000 and not result["non_2xx"]),
                )
            )
            # Baseline: the same server answering its cheapest route, to tell handler cost from HTTP cost.
            result = measure_throughput(server, "/healthz", min(5, args.wrk_seconds), args.wrk_connections)
            rows.append(
                (
                    "(c) baseline: GET /healthz",
                    f"{result['requests_per_second']:,.0f} req/s (p99 {result['p99_ms']:.1f} ms)",
                    "-",
                    "",
                )
            )

        if "cancel" not in skip:
            # The engine holds queued[0]; queued[1] waits (the rounds in (b) cancelled from the back).
            seconds = measure_cancel(server, running=queued[0], waiting=queued[1])
            rows.append(
                (
                    "(d) cancel the running job -> next job processing (engine stops at once)",
                    f"{seconds * 1000:.0f} ms",
                    "< 2 s",
                    verdict(seconds < 2),
                )
            )
    finally:
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(rows)
    return 0 if all(row[3] != "MISSED" for row in rows) else 1


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("measure", "measured", "target", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    print(f"\nservice bench on {os.cpu_count()} CPUs ({HOST}):")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
