"""Test helpers: the protocol schema and error codes, and the real engine process driven through its stdin/stdout."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infinitetalk_engine.contract import EngineError

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
INVALID = "<invalid line>"
SCHEMA = json.loads((REPO / "docs" / "engine-protocol.schema.json").read_text())


def validate(message: dict[str, Any], kind: str | None = None) -> None:
    """Raise unless `message` is valid protocol; with `kind` (a $defs name, e.g. "done") it must be that one."""
    schema = SCHEMA if kind is None else {**SCHEMA, "oneOf": [{"$ref": f"#/$defs/{kind}"}]}
    jsonschema.Draft202012Validator(schema).validate(message)


def error_code(call: Callable[..., Any], *args: Any, match: str | None = None, **kwargs: Any) -> str:
    """The protocol code of the `EngineError` that `call(*args, **kwargs)` raises; fails unless it raises one (whose
    message matches `match`, when given)."""
    with pytest.raises(EngineError, match=match) as error:
        call(*args, **kwargs)
    return error.value.code


class EngineProcess:
    """`python -m infinitetalk_engine` as the service runs it. Every line it prints is checked against the schema."""

    def __init__(self, *args: str, wait_ready: bool = True, timeout: float = 60.0):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infinitetalk_engine", *args],
            cwd=REPO / "engine",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.raw_lines: list[str] = []
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.hello = self.next_event("hello", timeout=timeout)
        self.ready = self.next_event("ready", timeout=timeout) if wait_ready else None

    def _read_stdout(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode("utf-8")
            self.raw_lines.append(line)
            try:
                message = json.loads(line)
                validate(message)
            except (ValueError, jsonschema.ValidationError) as exc:
                message = {"type": INVALID, "line": line, "error": str(exc)}
            self.events.put(message)

    def _read_stderr(self) -> None:
        for raw in self.process.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace"))

    def send(self, message: dict[str, Any]) -> None:
        self.send_all(message)

    def send_all(self, *messages: dict[str, Any]) -> None:
        """Send messages in one write, so the engine reads them back to back (in this order)."""
        for message in messages:
            if message.get("type") in ("job", "cancel", "heartbeat", "shutdown"):
                validate(message)
        self.send_raw("\n".join(json.dumps(message) for message in messages))

    def send_raw(self, line: str) -> None:
        self.process.stdin.write(line.encode("utf-8") + b"\n")
        self.process.stdin.flush()

    def next_event(
        self,
        type_: str | None = None,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
    ) -> dict[str, Any]:
        """The next event (of `type_`, matching `where`), skipping others. Fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                event = self.events.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(
                    f"no {type_ or 'event'} within {timeout} s; stderr:\n" + "".join(self.stderr_lines[-20:])
                ) from None
            if event["type"] == INVALID:
                raise AssertionError(f"the engine wrote an invalid protocol line {event['line']!r}: {event['error']}")
            if (type_ is None or event["type"] == type_) and where(event):
                return event

    def job_events(self, job_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """All events of one job up to and including its `done` or `error`."""
        events = []
        while True:
            event = self.next_event(timeout=timeout, where=lambda e: e.get("job_id") == job_id)
            events.append(event)
            if event["type"] in ("done", "error"):
                return events

    def shutdown(self, timeout: float = 30.0) -> int:
        self.send({"type": "shutdown"})
        self.next_event("bye", timeout=timeout)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def job_message(job_id: str, image: Path, audio: Path, output: Path, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "job",
        "job_id": job_id,
        "image_path": str(image),
        "audio_path": str(audio),
        "output_path": str(output),
    }
    if params:
        message["params"] = params
    return message
