"""Webhooks through the real binary and a real receiver: Standard Webhooks signatures checked by this file's own
HMAC code, `job.started` and `job.completed` with the status object, retries with the same `webhook-id` after the
receiver fails, and an undelivered event surviving `kill -9` of the service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import BINARY, REPO, running_service


class Receiver:
    """A local webhook receiver: records every delivery; answers 500 while `failing` is set."""

    def __init__(self):
        self.deliveries: list[dict] = []
        self.failing = False
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.changed:
                    status = 500 if receiver.failing else 204
                    receiver.deliveries.append({"headers": dict(self.headers), "body": body, "answered": status})
                    receiver.changed.notify_all()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, condition, timeout: float = 180) -> list[dict]:
        with self.changed:
            assert self.changed.wait_for(lambda: condition(self.deliveries), timeout), self.deliveries
            return list(self.deliveries)

    def of(self, job: str, event: str | None = None) -> list[dict]:
        return [
            d
            for d in self.deliveries
            if json.loads(d["body"])["data"]["request_id"] == job
            and (event is None or json.loads(d["body"])["type"] == event)
        ]


def verify(delivery: dict, secret: str) -> dict:
    """Checks the Standard Webhooks signature with Python's own HMAC; returns the body."""
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + delivery["body"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert expected in headers["webhook-signature"].split(" "), headers
    return json.loads(delivery["body"])


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory):
    # Local receivers are private addresses: allowed here on purpose; first retries after 200 ms.
    yield from running_service(
        tmp_path_factory, "webhook-service", ("--webhook-allow-private", "on", "--webhook-retry-delay", "200ms")
    )


def secret_of(server) -> str:
    command = [str(BINARY), "webhook-secret", "--data-dir", str(server.data_dir)]
    return subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def submit(server, media, receiver, **fields: str) -> str:
    status, answer = server.post(
        "api/generate",
        fields={"webhook_url": receiver.url, **fields},
        files={"image": media / "astronaut.png", "audio": media / "speech-en.wav"},
    )
    assert status == 200, answer
    return answer["request_id"]


def test_a_job_reports_start_and_end_signed(hook_server, media, receiver):
    job = submit(hook_server, media, receiver)
    receiver.wait_for(lambda _: receiver.of(job, "job.completed"))
    secret = secret_of(hook_server)
    events = [verify(d, secret) for d in receiver.of(job)]
    assert [e["type"] for e in events] == ["job.started", "job.completed"]
    assert events[-1]["data"]["status"] == "completed" and events[-1]["data"]["result_url"]
    assert len({d["headers"]["webhook-id"] for d in receiver.of(job)}) == 2
    status = hook_server.get_json(f"api/status/{job}")
    assert status["webhook"]["event"] == "job.completed" and status["webhook"]["url"] == receiver.url


def test_progress_webhooks_come_at_most_every_two_seconds(hook_server, media, receiver):
    from datetime import datetime

    job = submit(hook_server, media, receiver, webhook_progress="true")
    receiver.wait_for(lambda _: receiver.of(job, "job.completed"))
    progress = [json.loads(d["body"]) for d in receiver.of(job, "job.progress")]
    assert progress, "a job that changes while it runs reports progress at least once"
    assert all(p["data"]["status"] == "processing" for p in progress)
    times = sorted(datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) for p in progress)
    # Timestamps are whole seconds (ISO 8601): two events 2 s apart may print 1 s apart, never less.
    assert all((b - a).total_seconds() >= 1 for a, b in zip(times, times[1:], strict=False)), times


def test_a_failed_delivery_is_retried_with_the_same_id(hook_server, media, receiver):
    receiver.failing = True
    job = submit(hook_server, media, receiver)
    receiver.wait_for(lambda _: len(receiver.of(job, "job.completed")) >= 2)
    receiver.failing = False
    attempts = receiver.wait_for(lambda _: any(d["answered"] == 204 for d in receiver.of(job, "job.completed")))
    completed = [d for d in attempts if d in receiver.of(job, "job.completed")]
    assert len({d["headers"]["webhook-id"] for d in completed}) == 1
    secret = secret_of(hook_server)
    assert all(verify(d, secret)["type"] == "job.completed" for d in completed)


def test_an_event_not_yet_delivered_survives_kill_9(hook_server, media, receiver):
    receiver.failing = True
    job = submit(hook_server, media, receiver)
    receiver.wait_for(lambda _: receiver.of(job, "job.completed"))
    first_id = receiver.of(job, "job.completed")[0]["headers"]["webhook-id"]
    os.killpg(hook_server.process.pid, signal.SIGKILL)
    hook_server.process.wait()
    receiver.failing = False
    hook_server.start()
    delivered = receiver.wait_for(
        lambda _: any(d["answered"] == 204 for d in receiver.of(job, "job.completed")), timeout=120
    )
    ids = {d["headers"]["webhook-id"] for d in delivered if d in receiver.of(job, "job.completed")}
    assert ids == {first_id}
