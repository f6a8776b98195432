"""The service binary as the benchmarks run it: on a free loopback port, in its own process group so that cleanup
reaches the engine too, its output in `log_path`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """`binary serve --host 127.0.0.1 --port P --data-dir DATA --log-level warning` plus `arguments`."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, arguments: list[str]):
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log = open(log_path, "wb")  # noqa: SIM115 (outlives __init__; closed in stop())
        self.process = subprocess.Popen(
            [str(binary), "serve", "--host", HOST, "--port", str(self.port), "--data-dir", str(data_dir)]
            + ["--log-level", "warning", *arguments],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> None:
        """Until /readyz answers 200 (the engine is loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in the group (the engine)
        self.log.close()
