#!/usr/bin/env python3
"""A stand-in engine speaking the engine protocol (docs/engine-protocol.md), with switches to misbehave.

Used by the Swift worker tests: it needs only the Python standard library and answers in milliseconds.

    fake_engine.py [--max-jobs N] [--job-seconds S] [--load-seconds S]
                   [--crash-on-job] [--crash-once MARKER] [--hang-on-job] [--ignore-cancel] [--garbage]
                   [--fail-load] [--never-ready] [--job-error CODE [--retryable]]
                   [--two-speakers] [--resolutions A,B] [--default-steps N] [--max-steps N] [--record-jobs DIR]
                   [--segments N]
"""

import argparse
import json
import os
import pathlib
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--max-jobs", type=int, default=1)
parser.add_argument("--job-seconds", type=float, default=0.3)
parser.add_argument("--load-seconds", type=float, default=0.0)
parser.add_argument("--crash-on-job", action="store_true", help="exit(3) in the middle of every job")
parser.add_argument("--crash-once", metavar="MARKER", help="crash in the first job only (MARKER file remembers)")
parser.add_argument("--hang-on-job", action="store_true", help="freeze (no more reading or writing) in a job")
parser.add_argument("--ignore-cancel", action="store_true")
parser.add_argument("--garbage", action="store_true", help="write lines that are not protocol messages")
parser.add_argument("--fail-load", action="store_true")
parser.add_argument("--never-ready", action="store_true")
parser.add_argument("--job-error", metavar="CODE")
parser.add_argument("--retryable", action="store_true")
parser.add_argument("--two-speakers", action="store_true", help="declare audio2_path (two_speakers in hello)")
parser.add_argument("--resolutions", default="480p,720p", help="the resolution parameter's choices (first: default)")
parser.add_argument("--default-steps", type=int, default=4)
parser.add_argument("--max-steps", type=int, default=50)
parser.add_argument("--record-jobs", metavar="DIR", help="write each job message to DIR/<job_id>.json")
parser.add_argument("--loras", default="", help="a LoRA library of these names (comma-separated); the last misfits")
parser.add_argument("--segments", type=int, default=0, help="clips of live stream written to a job's segments_dir")
args = parser.parse_args()

out_lock = threading.Lock()
cancelled = set()
active = set()
frozen = threading.Event()


def send(message):
    if frozen.is_set():
        return
    with out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def garbage(text):
    if args.garbage:
        with out_lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def freeze():
    frozen.set()
    while True:
        time.sleep(60)


def write_whole(folder, name, data):
    """As the engine does: NAME.part, then renamed, so a file under its name is always complete."""
    path = os.path.join(folder, name)
    with open(path + ".part", "wb") as part:
        part.write(data)
    os.replace(path + ".part", path)


def write_live_stream(job_id, folder):
    """The live stream's files and a `segment` event per clip (4 s each); the bytes are not real media."""
    for clip in range(1, args.segments + 1):
        if clip == 1:
            write_whole(folder, "init.mp4", b"\x00\x00\x00\x08ftyp")
        name = f"clip-{clip:05d}.m4s"
        write_whole(folder, name, b"\x00\x00\x00\x08moof" + bytes(clip))
        send(
            {
                "type": "segment",
                "job_id": job_id,
                "clip": clip,
                "clips": args.segments,
                "file": name,
                "init_file": "init.mp4",
                "duration_seconds": 4.0,
                "end_seconds": 4.0 * clip,
            }
        )


def run_job(message):
    job_id = message["job_id"]
    active.add(job_id)
    try:
        if args.job_error:
            send(
                {
                    "type": "error",
                    "job_id": job_id,
                    "code": args.job_error,
                    "message": f"fake {args.job_error}",
                    "retryable": args.retryable,
                }
            )
            return
        send({"type": "stage", "job_id": job_id, "stage": "decoding_audio", "message": "Decoding audio"})
        garbage("{broken json")
        send(
            {
                "type": "stage",
                "job_id": job_id,
                "stage": "generating",
                "message": "Generating clip 1 of 1",
                "clip": 1,
                "clips": 1,
            }
        )
        steps = 5
        for step in range(1, steps + 1):
            if job_id in cancelled and not args.ignore_cancel:
                send(
                    {"type": "error", "job_id": job_id, "code": "cancelled", "message": "Cancelled", "retryable": False}
                )
                return
            if step == 3:
                crash = args.crash_on_job
                if args.crash_once and not os.path.exists(args.crash_once):
                    open(args.crash_once, "w").close()
                    crash = True
                if crash:
                    sys.stderr.write("fake engine: boom (simulated crash)\n")
                    sys.stderr.flush()
                    os._exit(3)
                if args.hang_on_job:
                    freeze()
            step_end = time.time() + args.job_seconds / steps
            while time.time() < step_end and (job_id not in cancelled or args.ignore_cancel):
                time.sleep(min(0.05, max(0.0, step_end - time.time())))
            if job_id in cancelled and not args.ignore_cancel:
                send(
                    {"type": "error", "job_id": job_id, "code": "cancelled", "message": "Cancelled", "retryable": False}
                )
                return
            send(
                {
                    "type": "progress",
                    "job_id": job_id,
                    "step": step,
                    "steps": steps,
                    "clip": 1,
                    "clips": 1,
                    "fraction": step / steps,
                    "eta_seconds": (steps - step) * args.job_seconds / steps,
                }
            )
            garbage(json.dumps({"type": "mystery", "job_id": job_id}))
        if args.segments and message.get("segments_dir"):
            write_live_stream(job_id, message["segments_dir"])
        with open(message["output_path"], "wb") as output:
            output.write(b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
        send(
            {
                "type": "done",
                "job_id": job_id,
                "output_path": message["output_path"],
                "frames": 25,
                "duration_seconds": 1.0,
                "fps": 25,
                "width": 64,
                "height": 64,
                "seconds": args.job_seconds,
                "warnings": [],
            }
        )
    finally:
        active.discard(job_id)


def parameters():
    """The job parameters this engine declares in hello (as the real engines do, see engine-protocol.md)."""
    resolutions = args.resolutions.split(",")
    specs = [
        {"name": "resolution", "type": "string", "description": "", "default": resolutions[0], "choices": resolutions},
        {
            "name": "steps",
            "type": "integer",
            "description": "",
            "default": args.default_steps,
            "minimum": 1,
            "maximum": args.max_steps,
        },
        {"name": "seed", "type": "integer", "description": "", "default": None, "minimum": 0, "maximum": 2147483647},
        {"name": "prompt", "type": "string", "description": "", "default": "A person is talking.", "max_length": 2000},
        {"name": "negative_prompt", "type": "string", "description": "", "default": None, "max_length": 2000},
        {"name": "shift", "type": "number", "description": "", "default": None, "minimum": 0.5, "maximum": 20},
        {
            "name": "text_guidance_scale",
            "type": "number",
            "description": "",
            "default": None,
            "minimum": 0,
            "maximum": 20,
        },
        {
            "name": "audio_guidance_scale",
            "type": "number",
            "description": "",
            "default": None,
            "minimum": 0,
            "maximum": 20,
        },
        {"name": "color_correction", "type": "number", "description": "", "default": None, "minimum": 0, "maximum": 1},
    ]
    if args.two_speakers:
        specs.append({"name": "audio2_path", "type": "path", "description": "", "default": None})
    if args.loras:
        specs.append(
            {
                "name": "loras",
                "type": "loras",
                "description": "",
                "default": None,
                "choices": [lora["name"] for lora in library()],
                "minimum": 0,
                "maximum": 2,
                "count": 3,
            }
        )
    specs.append(
        {
            "name": "speaker_boxes",
            "type": "boxes",
            "description": "",
            "default": None,
            "count": 2,
            "requires": "audio2_path",
        }
    )
    return specs


added_loras: list[str] = []  # names added by `add_lora`


def library() -> list[dict]:
    """The `--loras` library as hello lists it (every file fits but the last of `--loras`), then the added ones."""
    names = args.loras.split(",") if args.loras else []
    misfit = names[-1] if names else None
    return [
        {
            "name": name,
            "size_bytes": 1000,
            "rank": 16,
            "style": "kijai",
            "targets": 400,
            "modules": ["self_attn.q"],
            "fits": name != misfit,
            "reason": None if name != misfit else "400 of 400 targets have other shapes",
        }
        for name in names + added_loras
    ]


def hello():
    return {
        "type": "hello",
        "protocol_version": 1,
        "engine": "fake",
        "engine_version": "0.0.1",
        "capabilities": {
            "parameters": parameters(),
            "resolutions": args.resolutions.split(","),
            "fps": 25,
            "max_concurrent_jobs": args.max_jobs,
            "device": "cpu",
            "is_preview": True,
            "two_speakers": args.two_speakers,
            "default_steps": args.default_steps,
            "max_steps": args.max_steps,
            "loras": library(),
        },
    }


def add_lora(message):
    """Adds the name unless the file is missing, holds `misfit`, or the name is taken (saying hello again first)."""
    request_id, name, path = message["request_id"], message["name"], message["path"]
    refusal = None
    if not args.loras:
        refusal = ("lora_unsupported", "the fake engine runs without a LoRA library")
    elif not os.path.isfile(path):
        refusal = ("invalid_lora", "the file is not there")
    elif b"misfit" in pathlib.Path(path).read_bytes():
        refusal = ("invalid_lora", "3 of 3 targets have other shapes (e.g. blocks.0.ffn.0 is 8x8, the model's 16x8)")
    elif name in [lora["name"] for lora in library()]:
        refusal = ("lora_exists", f"the library already has a LoRA named {name}")
    else:
        added_loras.append(name)
    if refusal:
        send({"type": "lora_refused", "request_id": request_id, "code": refusal[0], "message": refusal[1]})
    else:
        send(hello())
        listing = next(lora for lora in library() if lora["name"] == name)
        send({"type": "lora_added", "request_id": request_id, "lora": {**listing, "size_bytes": os.path.getsize(path)}})


def main():
    garbage("fake engine says hi on stdout (not a protocol message)")
    send(hello())
    if args.fail_load:
        send(
            {
                "type": "error",
                "job_id": None,
                "code": "load_failed",
                "message": "weights/missing.safetensors not found",
                "retryable": False,
            }
        )
        sys.exit(1)
    if not args.never_ready:
        time.sleep(args.load_seconds)
        send({"type": "ready", "load_seconds": args.load_seconds})
    for line in sys.stdin:
        if frozen.is_set():
            freeze()
        try:
            message = json.loads(line)
        except ValueError:
            send({"type": "error", "job_id": None, "code": "bad_message", "message": "not JSON", "retryable": False})
            continue
        kind = message.get("type")
        if kind == "heartbeat":
            send({"type": "heartbeat", "seq": message["seq"], "active_jobs": sorted(active)})
        elif kind == "job":
            if args.record_jobs:
                with open(os.path.join(args.record_jobs, message["job_id"] + ".json"), "w") as record:
                    json.dump(message, record)
            threading.Thread(target=run_job, args=(message,), daemon=True).start()
        elif kind == "cancel":
            cancelled.add(message["job_id"])
        elif kind == "add_lora":
            add_lora(message)
        elif kind == "rescan":
            send(hello())
        elif kind == "shutdown":
            for job_id in list(active):
                cancelled.add(job_id)
            deadline = time.time() + 2
            while active and time.time() < deadline and not args.ignore_cancel:
                time.sleep(0.01)
            send({"type": "bye"})
            return
    # stdin closed: the service is gone.


if __name__ == "__main__":
    main()
