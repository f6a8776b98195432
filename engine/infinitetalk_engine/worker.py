"""The engine worker: hello -> load -> ready -> jobs -> bye, over JSON lines.

Threads: the main thread loads the engine and then waits for shutdown; an input thread reads stdin so that
`cancel` and `heartbeat` are handled while jobs run; each job runs in its own thread, at most
`max_concurrent_jobs` at once. Every job ends with exactly one `done` or `error`, sent from `finally`.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

from .contract import Engine, EngineError, JobCancelled, JobRequest
from .job_context import MIN_PROGRESS_INTERVAL, ProtocolJobContext
from .media.video import remove_partial_output
from .parameters import ParameterSpec, check_params
from .protocol import (
    AddLoraMessage,
    BadMessage,
    Bye,
    CancelMessage,
    Done,
    Error,
    Event,
    HeartbeatMessage,
    HeartbeatReply,
    Hello,
    JobMessage,
    LoraAdded,
    LoraRefused,
    MessageWriter,
    Ready,
    RescanMessage,
    ShutdownMessage,
    parse_message,
)

log = logging.getLogger(__name__)

SHUTDOWN_JOIN_SECONDS = 30.0  # how long shutdown waits for cancelled jobs to wind down


class WorkerState(enum.Enum):
    LOADING = "loading"  # hello sent; jobs are refused with not_ready
    READY = "ready"  # accepting jobs
    STOPPING = "stopping"  # shutdown or stdin closed: running jobs are cancelled, new ones refused
    FAILED = "failed"  # loading failed


@dataclass
class RunningJob:
    request: JobRequest
    cancelled: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class Worker:
    def __init__(self, engine: Engine, writer: MessageWriter, progress_interval: float = MIN_PROGRESS_INTERVAL):
        self.engine = engine
        self.writer = writer
        self.progress_interval = progress_interval  # seconds between a job's progress events (0: send every one)
        self.capabilities = engine.capabilities()
        self.max_jobs = int(self.capabilities["max_concurrent_jobs"])
        self.parameters = [ParameterSpec.from_json(spec) for spec in self.capabilities["parameters"]]
        self.state = WorkerState.LOADING
        self._jobs: dict[str, RunningJob] = {}
        self._lock = threading.Lock()  # guards state and _jobs
        self._stop = threading.Event()
        self._library_lock = threading.Lock()  # one library change (and its hello) at a time

    # MARK: - lifecycle

    def serve(self, stdin: BinaryIO) -> int:
        """Run until `shutdown` or end of input. Returns the process exit status (0, or 1 if loading failed)."""
        self.writer.send(Hello(self.engine.name, self.engine.version, self.capabilities))
        threading.Thread(target=self._read_input, args=(stdin,), name="stdin", daemon=True).start()

        started = time.monotonic()
        try:
            self.engine.load()
        except Exception as exc:  # any failure to load is load_failed; the message names the cause
            log.error("loading the %s engine failed:\n%s", self.engine.name, traceback.format_exc())
            with self._lock:
                self.state = WorkerState.FAILED
            message = exc.message if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
            self.writer.send(Error(None, "load_failed", message, False))
            return 1
        with self._lock:
            if self.state is WorkerState.LOADING:
                self.state = WorkerState.READY
        self.writer.send(Ready(round(time.monotonic() - started, 3)))
        log.info("%s engine ready", self.engine.name)

        self._stop.wait()
        self._drain()
        self.writer.send(Bye())
        return 0

    def stop(self) -> None:
        """Stop taking jobs, cancel the running ones; `serve` then drains and returns."""
        with self._lock:
            if self.state is not WorkerState.FAILED:
                self.state = WorkerState.STOPPING
            for job in self._jobs.values():
                job.cancelled.set()
        self._stop.set()

    def _drain(self) -> None:
        with self._lock:
            threads = [job.thread for job in self._jobs.values() if job.thread is not None]
        deadline = time.monotonic() + SHUTDOWN_JOIN_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # MARK: - input

    def _read_input(self, stdin: BinaryIO) -> None:
        for line in stdin:
            if line.strip():
                self.handle_line(line)
        log.info("stdin closed; shutting down")
        self.stop()

    def handle_line(self, line: str | bytes) -> None:
        """Act on one inbound line. Never raises: bad input becomes an `error` event."""
        try:
            message = parse_message(line)
        except BadMessage as exc:
            self.writer.send(Error(exc.job_id, exc.code, exc.message, False))
            return
        try:
            if isinstance(message, HeartbeatMessage):
                with self._lock:
                    active = list(self._jobs)
                self.writer.send(HeartbeatReply(message.seq, active))
            elif isinstance(message, CancelMessage):
                self._cancel(message.job_id)
            elif isinstance(message, JobMessage):
                self._start(message.request)
            elif isinstance(message, ShutdownMessage):
                self.stop()
            elif isinstance(message, AddLoraMessage):
                # Copying a large file takes a while: heartbeats and cancels keep being answered meanwhile.
                threading.Thread(target=self._add_lora, args=(message,), name="add-lora", daemon=True).start()
            elif isinstance(message, RescanMessage):
                self._library_changed(self.engine.rescan_loras)
        except Exception:  # a bug in handling must not kill the input thread
            log.error("handling %s failed:\n%s", type(message).__name__, traceback.format_exc())
            self.writer.send(Error(getattr(message, "job_id", None), "internal", INTERNAL_MESSAGE, False))

    # MARK: - LoRA library

    def _add_lora(self, message: AddLoraMessage) -> None:
        with self._lock:
            ready = self.state is WorkerState.READY
        if not ready:
            self.writer.send(LoraRefused(message.request_id, "not_ready", "the engine is not ready"))
            return
        try:
            listing = self._library_changed(lambda: self.engine.add_lora(message.name, message.path))
        except EngineError as exc:
            self.writer.send(LoraRefused(message.request_id, exc.code, exc.message))
        except Exception:
            log.error("adding LoRA %s failed:\n%s", message.name, traceback.format_exc())
            self.writer.send(LoraRefused(message.request_id, "internal", INTERNAL_MESSAGE))
        else:
            self.writer.send(LoraAdded(message.request_id, listing))

    def _library_changed(self, change):
        """Runs `change` (which alters the LoRA library), then says `hello` again with the new capabilities (the
        `loras` parameter's choices follow the library), before any answer to the change."""
        with self._library_lock:
            result = change()
            capabilities = self.engine.capabilities()
            parameters = [ParameterSpec.from_json(spec) for spec in capabilities["parameters"]]
            with self._lock:
                self.capabilities, self.parameters = capabilities, parameters
            self.writer.send(Hello(self.engine.name, self.engine.version, capabilities))
        return result

    def _cancel(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            log.info("cancelling job %s", job_id)
            job.cancelled.set()

    def _start(self, request: JobRequest) -> None:
        refusal = self._check_params(request)
        with self._lock:
            if refusal is None:
                refusal = self._refusal(request.job_id)
            if refusal is None:
                job = RunningJob(request)
                job.thread = threading.Thread(target=self._run, args=(job,), name=f"job-{request.job_id}", daemon=True)
                self._jobs[request.job_id] = job
                job.thread.start()
                return
        self.writer.send(refusal)

    def _refusal(self, job_id: str) -> Error | None:
        """Why a job cannot start now (called with the lock held), or None."""
        if self.state is WorkerState.LOADING:
            return Error(job_id, "not_ready", "the engine is still loading", True)
        if self.state is not WorkerState.READY:
            return Error(job_id, "not_ready", "the engine is shutting down", True)
        if job_id in self._jobs:
            # No job_id on this error: the service would take it as the end of the job that is running.
            return Error(None, "bad_message", f"job {job_id} is already running; the second job was ignored", False)
        if len(self._jobs) >= self.max_jobs:
            return Error(job_id, "busy", f"already running {len(self._jobs)} of {self.max_jobs} jobs", True)
        return None

    def _check_params(self, request: JobRequest) -> Error | None:
        """Params this engine cannot honour (its declared `parameters`), as a bad_params error naming the field."""
        problem = check_params(asdict(request.params), self.parameters, self.engine.name)
        return None if problem is None else Error(request.job_id, "bad_params", problem, False)

    # MARK: - jobs

    def _run(self, job: RunningJob) -> None:
        request = job.request
        started = time.monotonic()
        context = ProtocolJobContext(request.job_id, self.writer.send, job.cancelled, self.progress_interval)
        outcome: Event | None = None
        try:
            log.info("job %s started", request.job_id)
            result = self.engine.run(request, context)
            outcome = Done(request.job_id, result, round(time.monotonic() - started, 3))
        except JobCancelled:
            outcome = Error(request.job_id, "cancelled", "the job was cancelled", False)
        except EngineError as exc:
            outcome = Error(request.job_id, exc.code, _without_paths(exc.message, request), exc.retryable)
        except Exception as exc:
            outcome = _unexpected_failure(request.job_id, exc)
        finally:
            if not isinstance(outcome, Done):
                remove_partial_output(request.output_path)
            if outcome is None:  # a BaseException (e.g. SystemExit) is on its way out
                outcome = Error(request.job_id, "internal", "the job was interrupted", False)
            with self._lock:
                self._jobs.pop(request.job_id, None)
            self.writer.send(outcome)
            log.info(
                "job %s finished: %s",
                request.job_id,
                outcome.type if isinstance(outcome, Done) else getattr(outcome, "code", "?"),
            )


# Public messages never carry an internal path or raw exception text: those go to stderr, which the service logs.
INTERNAL_MESSAGE = "the engine failed unexpectedly; the details are in the service log"
DISK_FULL_MESSAGE = "the disk is full: the result could not be written"
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def _unexpected_failure(job_id: str, exc: Exception) -> Error:
    """Map an exception the engine did not classify: a full disk is disk_full, host memory is retryable out_of_memory,
    the GPU's is gpu_out_of_memory (the same job needs the same GPU memory), the rest
    is internal with a generic message (the traceback goes to stderr)."""
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError outside an engine's own handling
        return Error(
            job_id,
            "gpu_out_of_memory",
            "the GPU ran out of memory: " + (str(exc) or "CUDA out of memory").splitlines()[0],
            False,
        )
    if isinstance(exc, MemoryError):
        return Error(job_id, "out_of_memory", f"out of memory: {exc}", True)
    log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    if is_disk_full(exc):
        return Error(job_id, "disk_full", DISK_FULL_MESSAGE, False)
    return Error(job_id, "internal", INTERNAL_MESSAGE, False)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from or during, is ENOSPC / EDQUOT (PyAV's errors carry errno
    too)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "errno", None) in _DISK_FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


def _without_paths(message: str, request: JobRequest) -> str:
    """`message` with the job's own file paths (the service sends absolute ones) replaced by what they are, and the
    folders holding them left out."""
    names = {
        request.output_path + ".part": "the result",
        request.output_path: "the result",
        request.image_path: "the image",
        request.audio_path: "the audio",
    }
    if request.params.audio2_path:
        names[request.params.audio2_path] = "the second audio"
    absolute = {path: name for path, name in names.items() if os.path.isabs(path)}
    for path, name in sorted(absolute.items(), key=lambda item: -len(item[0])):  # `x.mp4.part` before `x.mp4`
        message = message.replace(path, name)
    for folder in {os.path.dirname(path) for path in absolute} - {"/"}:
        message = message.replace(folder + os.sep, "")
    return message
