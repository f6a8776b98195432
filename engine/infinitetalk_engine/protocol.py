"""The JSON-lines protocol between the service and the engine (docs/engine-protocol.md, version 1).

Inbound messages are parsed and checked by `parse_message`; outbound events are the small dataclasses below,
grouped by direction. `MessageWriter` is the only code that writes to the protocol stream.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, TextIO

from .contract import JobParams, JobRequest, JobResult

PROTOCOL_VERSION = 1
STAGES = ("decoding_audio", "audio_features", "encoding_image", "encoding_text", "generating", "encoding_video")

log = logging.getLogger(__name__)


class BadMessage(Exception):
    """An inbound line the engine cannot act on. Becomes an `error` event with `code` (and `job_id` if known)."""

    def __init__(self, message: str, job_id: str | None = None, code: str = "bad_message"):
        super().__init__(message)
        self.message, self.job_id, self.code = message, job_id, code


# MARK: - Service -> engine


@dataclass(frozen=True)
class JobMessage:
    request: JobRequest


@dataclass(frozen=True)
class CancelMessage:
    job_id: str


@dataclass(frozen=True)
class HeartbeatMessage:
    seq: int


@dataclass(frozen=True)
class ShutdownMessage:
    pass


@dataclass(frozen=True)
class AddLoraMessage:
    """Validate the LoRA file at `path` and add it to the library as `name`: answered by a new `hello` then
    `lora_added`, or by `lora_refused` alone, with the same `request_id`."""

    request_id: str
    name: str
    path: str


@dataclass(frozen=True)
class RescanMessage:
    """Read the LoRA library folder again and send a new `hello`."""


Incoming = JobMessage | CancelMessage | HeartbeatMessage | ShutdownMessage | AddLoraMessage | RescanMessage


def parse_message(line: str | bytes) -> Incoming:
    """One inbound line -> a message. Raises `BadMessage` for anything malformed; unknown keys are ignored."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadMessage(f"not a JSON line: {exc}") from exc
    if not isinstance(data, dict):
        raise BadMessage("a message must be a JSON object")
    job_id = data.get("job_id") if isinstance(data.get("job_id"), str) and data.get("job_id") else None
    kind = data.get("type")
    if kind == "job":
        return JobMessage(_parse_job(data, job_id))
    if kind == "cancel":
        return CancelMessage(_require_string(data, "job_id", job_id))
    if kind == "heartbeat":
        seq = data.get("seq")
        if not _is_int(seq):
            raise BadMessage("heartbeat needs an integer 'seq'")
        return HeartbeatMessage(seq)
    if kind == "shutdown":
        return ShutdownMessage()
    if kind == "add_lora":
        return AddLoraMessage(*(_require_string(data, key, None) for key in ("request_id", "name", "path")))
    if kind == "rescan":
        return RescanMessage()
    if kind is None:
        raise BadMessage("message has no 'type'", job_id)
    raise BadMessage(f"unknown message type {kind!r}", job_id)


def _parse_job(data: dict[str, Any], job_id: str | None) -> JobRequest:
    request = JobRequest(
        job_id=_require_string(data, "job_id", job_id),
        image_path=_require_string(data, "image_path", job_id),
        audio_path=_require_string(data, "audio_path", job_id),
        output_path=_require_string(data, "output_path", job_id),
        segments_dir=_optional_string(data, "segments_dir", job_id),
    )
    raw = data.get("params")
    if raw is None:
        return request
    if not isinstance(raw, dict):
        raise BadMessage("'params' must be an object", job_id, "bad_params")
    request.params = _parse_params(raw, job_id)
    return request


def _parse_params(raw: dict[str, Any], job_id: str) -> JobParams:
    """Check each known key's type (as the schema does); null or absent keeps the default. The worker then checks
    the values against the engine's declared `parameters` (choices, ranges)."""
    params = JobParams()

    def bad(key: str, expected: str) -> BadMessage:
        return BadMessage(f"params.{key} must be {expected}, got {raw[key]!r}", job_id, "bad_params")

    for key, value in raw.items():
        if value is None or key not in {f.name for f in fields(JobParams)}:
            continue
        if key in ("steps", "seed", "audio_guidance_steps"):
            minimum = 1 if key == "steps" else 0
            if not _is_int(value) or value < minimum:
                raise bad(key, f"an integer >= {minimum}")
        elif key in ("resolution", "prompt", "negative_prompt", "audio2_path"):
            if not isinstance(value, str):
                raise bad(key, "a string")
        elif key == "loras":
            if not isinstance(value, list) or not all(
                isinstance(entry, dict) and isinstance(entry.get("name"), str) and _is_number(entry.get("scale", 1))
                for entry in value
            ):
                raise bad(key, 'a list of {"name": string, "scale": number}')
        elif key == "speaker_boxes":
            if not isinstance(value, list) or not all(
                isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box) for box in value
            ):
                raise bad(key, "a list of [x_min, y_min, x_max, y_max] boxes")
        elif not _is_number(value):  # shift, guidance scales, lora_scale, color_correction
            raise bad(key, "a number")
        setattr(params, key, value)
    return params


def _require_string(data: dict[str, Any], key: str, job_id: str | None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{data.get('type')} message needs a non-empty string {key!r}", job_id)
    return value


def _optional_string(data: dict[str, Any], key: str, job_id: str | None) -> str | None:
    return None if data.get(key) is None else _require_string(data, key, job_id)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# MARK: - Engine -> service


@dataclass
class Event:
    """Base of outbound events. `OMIT_IF_NONE` keys are left out when unset (the schema gives them no null)."""

    type: ClassVar[str]
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> str:
        body: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_IF_NONE:
                continue
            body[f.name] = value
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


@dataclass
class Hello(Event):
    type: ClassVar[str] = "hello"
    engine: str
    engine_version: str
    capabilities: dict[str, Any]
    protocol_version: int = PROTOCOL_VERSION


@dataclass
class Ready(Event):
    type: ClassVar[str] = "ready"
    load_seconds: float


@dataclass
class Stage(Event):
    type: ClassVar[str] = "stage"
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("clip", "clips")
    job_id: str
    stage: str
    message: str
    clip: int | None = None
    clips: int | None = None


@dataclass
class Progress(Event):
    type: ClassVar[str] = "progress"
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("step", "steps", "clip", "clips")
    job_id: str
    fraction: float
    step: int | None = None
    steps: int | None = None
    clip: int | None = None
    clips: int | None = None
    eta_seconds: float | None = None


@dataclass
class Segment(Event):
    """A clip's live segment is complete in the job's `segments_dir`."""

    type: ClassVar[str] = "segment"
    job_id: str
    clip: int
    clips: int | None
    file: str
    init_file: str
    duration_seconds: float
    end_seconds: float


@dataclass
class Done(Event):
    """The engine's `JobResult` (its keys at the top level of the message) and how long the job took."""

    type: ClassVar[str] = "done"
    job_id: str
    result: JobResult
    seconds: float

    def to_json(self) -> str:
        result = {**asdict(self.result), "duration_seconds": round(self.result.duration_seconds, 3)}
        body = {"type": self.type, "job_id": self.job_id, **result, "seconds": self.seconds}
        return json.dumps(body, separators=(",", ":"), allow_nan=False)


@dataclass
class Error(Event):
    type: ClassVar[str] = "error"
    job_id: str | None
    code: str
    message: str
    retryable: bool = False


@dataclass
class HeartbeatReply(Event):
    type: ClassVar[str] = "heartbeat"
    seq: int
    active_jobs: list[str]


@dataclass
class LoraAdded(Event):
    """The answer to `add_lora`: the file is in the library, listed as `lora` (as in `hello`)."""

    type: ClassVar[str] = "lora_added"
    request_id: str
    lora: dict[str, Any]


@dataclass
class LoraRefused(Event):
    """The answer to `add_lora`: nothing was added (`invalid_lora`, `lora_exists`, `lora_unsupported`, ...)."""

    type: ClassVar[str] = "lora_refused"
    request_id: str
    code: str
    message: str


@dataclass
class Bye(Event):
    type: ClassVar[str] = "bye"


class MessageWriter:
    """Writes events to the protocol stream: one line each, flushed at once, safe to call from any thread."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()
        self._broken = False

    def send(self, event: Event) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:  # the service went away; stdin EOF follows
                self._broken = True
                log.warning("protocol stream closed, dropping events: %s", exc)
