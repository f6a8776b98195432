"""worker.py with a fake engine, in-process: the job life cycle and how failures map to protocol errors."""

from __future__ import annotations

import errno
import json
import os
import queue
import threading
from pathlib import Path

import pytest
from engine_process import validate

from infinitetalk_engine.contract import Engine, EngineError, JobResult
from infinitetalk_engine.parameters import parameter_capabilities, standard_parameters
from infinitetalk_engine.protocol import MessageWriter
from infinitetalk_engine.worker import Worker


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (matched by name, so the worker never imports torch)."""


class FakeEngine(Engine):
    """`job.image_path` names the behaviour: ok, slow (runs until cancelled), bad_image, crash, oom, cuda_oom."""

    name, version = "fake", "0"

    def __init__(self, max_jobs=2, load_gate: threading.Event | None = None, load_error: Exception | None = None):
        self.max_jobs, self.load_gate, self.load_error = max_jobs, load_gate, load_error
        self.running = threading.Semaphore(0)

    def capabilities(self):
        parameters = standard_parameters(resolutions=("480p",), default_steps=1, max_steps=10, two_speakers=False)
        capabilities = {"fps": 25, "max_concurrent_jobs": self.max_jobs, "device": "cpu", "is_preview": True}
        return {**parameter_capabilities(parameters), **capabilities}

    def load(self):
        if self.load_gate is not None:
            self.load_gate.wait()  # no timeout: the test decides when loading ends
        if self.load_error is not None:
            raise self.load_error

    def run(self, job, ctx):
        Path(job.output_path + ".part").write_bytes(b"partial")
        ctx.stage("generating", "working")
        self.running.release()
        behaviour = job.image_path
        if behaviour == "slow":
            while True:
                ctx.check_cancelled()
                threading.Event().wait(0.01)
        if behaviour == "bad_image":
            raise EngineError("bad_image", "not an image")
        if behaviour == "crash":
            raise ZeroDivisionError("bug")
        if behaviour == "oom":
            raise MemoryError()
        if behaviour == "cuda_oom":
            raise OutOfMemoryError("CUDA out of memory")
        if behaviour in ("disk_full", "quota_exceeded"):  # what writing the result raises once the disk is full
            code = errno.ENOSPC if behaviour == "disk_full" else errno.EDQUOT
            raise OSError(code, os.strerror(code), job.output_path + ".part")
        if behaviour == "disk_full_in_writer":  # PyAV's error, raised while a writer wrapped it
            try:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), job.output_path + ".part")
            except OSError as exc:
                raise RuntimeError(f"could not write {job.output_path}.part") from exc
        if behaviour == "path_in_message":
            folder = os.path.dirname(job.output_path)
            raise EngineError("bad_audio", f"cannot write {job.output_path}.part next to {folder}/other")
        os.replace(job.output_path + ".part", job.output_path)
        return JobResult(
            job.output_path, frames=25, duration_seconds=1.0, fps=25, width=64, height=64, warnings=["fake"]
        )


class QueueStream:
    def __init__(self):
        self.lines: queue.Queue[dict] = queue.Queue()

    def write(self, text: str) -> None:
        message = json.loads(text)
        validate(message)
        self.lines.put(message)

    def flush(self) -> None:
        pass


class Harness:
    """A Worker serving on a pipe, its events in a queue."""

    def __init__(self, engine: FakeEngine, tmp_path: Path):
        self.engine, self.tmp_path = engine, tmp_path
        self.stream = QueueStream()
        self.worker = Worker(engine, MessageWriter(self.stream))
        read_fd, self.write_fd = os.pipe()
        self.stdin = os.fdopen(read_fd, "rb")
        self.exit_status: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.exit_status.append(self.worker.serve(self.stdin)), daemon=True
        )
        self.thread.start()

    def send(self, message: dict) -> None:
        os.write(self.write_fd, json.dumps(message).encode() + b"\n")

    def job(self, job_id: str, behaviour: str = "ok", **params) -> Path:
        output = self.tmp_path / f"{job_id}.mp4"
        self.send(
            {
                "type": "job",
                "job_id": job_id,
                "image_path": behaviour,
                "audio_path": "a",
                "output_path": str(output),
                "params": params,
            }
        )
        return output

    def wait_running(self) -> None:
        """Block until one more job is inside `Engine.run` (its `.part` file written)."""
        assert self.engine.running.acquire(timeout=30), "no job started running"

    def next(self, type_: str | None = None, job_id: str | None = None, timeout: float = 10) -> dict:
        while True:
            event = self.stream.lines.get(timeout=timeout)
            if (type_ is None or event["type"] == type_) and (job_id is None or event.get("job_id") == job_id):
                return event

    def outcome(self, job_id: str) -> dict:
        while True:
            event = self.next(job_id=job_id)
            if event["type"] in ("done", "error"):
                return event

    def close_stdin(self) -> int:
        os.close(self.write_fd)
        self.thread.join(10)
        return self.exit_status[0]


@pytest.fixture
def harness(tmp_path):
    h = Harness(FakeEngine(), tmp_path)
    h.next("hello")
    h.next("ready")
    yield h
    if h.thread.is_alive():
        h.close_stdin()


def test_a_job_ends_in_done_with_the_engines_result_and_the_time_taken(harness):
    output = harness.job("j1")
    done = harness.outcome("j1")
    assert done["type"] == "done" and done["output_path"] == str(output) and done["frames"] == 25
    assert done["warnings"] == ["fake"] and done["seconds"] >= 0
    assert output.read_bytes() == b"partial"


@pytest.mark.parametrize(
    "behaviour, code, retryable",
    [
        ("bad_image", "bad_image", False),
        ("crash", "internal", False),
        ("oom", "out_of_memory", True),
        ("cuda_oom", "gpu_out_of_memory", False),
    ],
)
def test_failures_become_one_error_with_a_stable_code_and_no_partial_file(
    harness, tmp_path, behaviour, code, retryable
):
    harness.job("j", behaviour)
    error = harness.outcome("j")
    assert (error["type"], error["code"], error["retryable"]) == ("error", code, retryable)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("behaviour", ["disk_full", "quota_exceeded", "disk_full_in_writer"])
def test_a_full_disk_while_writing_the_result_is_disk_full_without_the_path(harness, tmp_path, behaviour, capsys):
    harness.job("j", behaviour)
    error = harness.outcome("j")
    assert (error["code"], error["retryable"]) == ("disk_full", False)
    assert error["message"] == "the disk is full: the result could not be written"
    assert str(tmp_path) not in json.dumps(error) and "Errno" not in error["message"]
    assert list(tmp_path.iterdir()) == [], "the partial result is removed"


def test_an_unexpected_exception_is_internal_with_a_generic_message_and_details_only_on_stderr(harness, caplog):
    harness.job("j", "crash")
    error = harness.outcome("j")
    assert error["code"] == "internal"
    assert "ZeroDivisionError" not in error["message"] and "bug" not in error["message"]
    assert "service log" in error["message"]
    assert "ZeroDivisionError: bug" in caplog.text, "the traceback is logged (stderr, which the service logs)"


def test_an_engine_error_never_shows_the_jobs_paths(harness, tmp_path):
    harness.job("j", "path_in_message")
    error = harness.outcome("j")
    assert error["code"] == "bad_audio"
    assert error["message"] == "cannot write the result next to other"
    assert str(tmp_path) not in error["message"]


def test_more_jobs_than_max_concurrent_jobs_are_busy(harness):
    harness.job("a", "slow")
    harness.job("b", "slow")
    harness.wait_running()
    harness.wait_running()
    harness.job("c")
    busy = harness.outcome("c")
    assert (busy["code"], busy["retryable"]) == ("busy", True)
    harness.send({"type": "cancel", "job_id": "a"})
    assert harness.outcome("a")["code"] == "cancelled"
    harness.job("d")  # a slot is free again
    assert harness.outcome("d")["type"] == "done"


def test_a_job_id_that_is_already_running_is_refused(harness):
    harness.job("a", "slow")
    harness.wait_running()
    harness.job("a")
    error = harness.next("error")
    assert (error["code"], error["job_id"]) == ("bad_message", None) and "already running" in error["message"]
    harness.send({"type": "heartbeat", "seq": 1})
    assert harness.next("heartbeat")["active_jobs"] == ["a"]  # the running job goes on
    harness.send({"type": "cancel", "job_id": "a"})
    assert harness.outcome("a")["code"] == "cancelled"


@pytest.mark.parametrize(
    "params, words",
    [
        ({"resolution": "720p"}, "params.resolution must be one of 480p"),
        ({"steps": 11}, "params.steps must be at most 10"),
        ({"shift": 0.1}, "params.shift must be at least 0.5"),
        ({"prompt": "x" * 2001}, "params.prompt must be at most 2000 characters"),
        ({"audio2_path": "/b.wav"}, "params.audio2_path: the fake engine does not take audio2_path"),
        ({"speaker_boxes": [[0, 0, 10, 10], [10, 0, 20, 10]]}, "params.speaker_boxes needs params.audio2_path"),
    ],
)
def test_params_beyond_the_engines_declared_parameters_are_bad_params_naming_the_field(harness, params, words):
    harness.job("j", **params)
    error = harness.outcome("j")
    assert error["code"] == "bad_params" and words in error["message"]


def test_heartbeat_lists_the_active_jobs(harness):
    harness.job("a", "slow")
    harness.wait_running()
    harness.send({"type": "heartbeat", "seq": 3})
    assert harness.next("heartbeat") == {"type": "heartbeat", "seq": 3, "active_jobs": ["a"]}
    harness.send({"type": "cancel", "job_id": "a"})
    harness.outcome("a")
    harness.send({"type": "heartbeat", "seq": 4})
    assert harness.next("heartbeat")["active_jobs"] == []


def test_cancelling_an_unknown_job_is_ignored(harness):
    harness.send({"type": "cancel", "job_id": "nobody"})
    harness.send({"type": "heartbeat", "seq": 1})
    assert harness.next()["type"] == "heartbeat"


def test_shutdown_cancels_running_jobs_then_says_bye(harness):
    harness.job("a", "slow")
    harness.wait_running()
    harness.send({"type": "shutdown"})
    assert harness.outcome("a")["code"] == "cancelled"
    assert harness.next()["type"] == "bye"
    assert harness.close_stdin() == 0


def test_end_of_input_is_a_shutdown(harness):
    assert harness.close_stdin() == 0
    assert harness.next()["type"] == "bye"


def test_jobs_before_ready_are_not_ready(tmp_path):
    gate = threading.Event()
    h = Harness(FakeEngine(load_gate=gate), tmp_path)
    h.next("hello")
    h.job("early")
    error = h.outcome("early")
    assert (error["code"], error["retryable"]) == ("not_ready", True)
    gate.set()
    h.next("ready")
    h.job("on_time")
    assert h.outcome("on_time")["type"] == "done"
    h.close_stdin()


def test_a_failed_load_is_load_failed_with_no_job_and_exit_status_1(tmp_path):
    h = Harness(FakeEngine(load_error=EngineError("load_failed", "/weights/dit.safetensors: missing")), tmp_path)
    h.next("hello")
    error = h.next("error")
    assert (error["job_id"], error["code"], error["message"]) == (
        None,
        "load_failed",
        "/weights/dit.safetensors: missing",
    )
    h.thread.join(10)
    assert h.exit_status == [1]


class LibraryEngine(FakeEngine):
    """A fake engine with a LoRA library: `add_lora` adds the name unless the file's name says `bad`."""

    def __init__(self):
        super().__init__()
        self.loras: list[str] = []

    def capabilities(self):
        capabilities = super().capabilities()
        return {**capabilities, "loras": [self.listing(name) for name in self.loras]}

    @staticmethod
    def listing(name):
        return {"name": name, "size_bytes": 1, "rank": 1, "style": "kijai", "targets": 1, "modules": ["ffn.0"],
                "fits": True, "reason": None}  # fmt: skip

    def add_lora(self, name, source):
        if "bad" in source:
            raise EngineError("invalid_lora", "3 of 3 targets have other shapes")
        self.loras.append(name)
        return self.listing(name)


def test_adding_a_lora_says_hello_again_with_it_before_answering_and_a_refusal_changes_nothing(tmp_path):
    harness = Harness(LibraryEngine(), tmp_path)
    assert harness.next("hello")["capabilities"]["loras"] == []
    harness.next("ready")
    harness.send({"type": "add_lora", "request_id": "r1", "name": "anime", "path": "/uploads/anime"})
    hello = harness.next()
    assert hello["type"] == "hello" and [lora["name"] for lora in hello["capabilities"]["loras"]] == ["anime"]
    assert harness.next() == {"type": "lora_added", "request_id": "r1", "lora": LibraryEngine.listing("anime")}
    harness.send({"type": "add_lora", "request_id": "r2", "name": "other", "path": "/uploads/bad"})
    refused = harness.next()
    assert refused["request_id"] == "r2" and refused["code"] == "invalid_lora" and "other shapes" in refused["message"]
    harness.send({"type": "rescan"})
    assert [lora["name"] for lora in harness.next("hello")["capabilities"]["loras"]] == ["anime"]
    harness.close_stdin()


def test_an_engine_without_a_library_refuses_to_add_a_lora(harness):
    harness.send({"type": "add_lora", "request_id": "r1", "name": "anime", "path": "/uploads/anime"})
    refused = harness.next("lora_refused")
    assert refused["code"] == "lora_unsupported" and refused["request_id"] == "r1"


def test_a_lora_sent_while_loading_is_refused_as_not_ready(tmp_path):
    gate = threading.Event()
    harness = Harness(FakeEngine(load_gate=gate), tmp_path)
    harness.next("hello")
    harness.send({"type": "add_lora", "request_id": "r1", "name": "anime", "path": "/uploads/anime"})
    assert harness.next("lora_refused")["code"] == "not_ready"
    gate.set()
    harness.close_stdin()
