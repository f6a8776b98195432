"""Fixtures for the browser tests: the real service binary with the preview engine, and headless Chromium.

The service runs from `<repo>/.build/debug/infinitetalk` (built by `make test-web` through `make build`) on a free
port with a temporary data folder. Chromium is Debian's `chromium` driven by `chromium-driver` through selenium.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websocket  # websocket-client, a dependency of selenium
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
# INFINITETALK_BINARY tests another build of the service, e.g. .build/release/infinitetalk.
BINARY = Path(os.environ.get("INFINITETALK_BINARY", REPO / ".build" / "debug" / "infinitetalk"))
MEDIA = REPO.parent / "shared" / "media"
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
READY_TIMEOUT_S = 180  # the engine imports its libraries on a shared 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """The service binary, started and restarted on one port and one data folder."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            str(BINARY),
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--engine",
            "preview",
            "--web-dir",
            str(REPO / "web"),
            # One job at a time, so that a second job waits in the queue (the cancel test relies on it); unless the
            # service runs several engines, whose slots add up.
            *(() if "--gpus" in self.extra_args else ("--max-concurrent", "1")),
            "--shutdown-grace",
            "1s",  # stop at once in the restart test and at the end
            "--min-free-disk",
            "0",  # the verdict must not depend on the machine's free disk
            "--heartbeat-timeout",
            "10m",  # the live playback test holds the engine (SIGSTOP) for as long as a loaded machine needs
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.log = ServiceLog(self.process.stdout, self.log_path)
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Waits for the service's own words: listening, and the engine ready (no polling, no fixed pause)."""
        ready = self.log.wait_for(lambda lines: all(any(m in line for line in lines) for m in READY_LOG_LINES))
        if not ready:
            state = "exited" if self.process.poll() is not None else f"was not ready within {READY_TIMEOUT_S} s"
            raise RuntimeError(f"the service {state}:\n{self.log_tail()}")
        with urllib.request.urlopen(self.url + "readyz", timeout=10) as answer:
            assert answer.status == 200, answer.status

    def keys(self, *arguments: str) -> str:
        """Runs `infinitetalk keys ARGUMENTS --data-dir <this service's>`; returns what it printed."""
        command = [str(BINARY), "keys", *arguments, "--data-dir", str(self.data_dir)]
        return subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True).stdout

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # MARK: - The HTTP API, for setting up and checking what the page shows

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=10) as answer:
            return json.load(answer)

    def post(
        self, path: str, fields: dict[str, str] | None = None, files: dict[str, Path] | None = None
    ) -> tuple[int, dict]:
        """POSTs multipart form data; returns (status, JSON body) for success and error answers alike."""
        import urllib3  # selenium's own dependency

        body: dict = dict(fields or {})
        for name, path_ in (files or {}).items():
            body[name] = (path_.name, path_.read_bytes())
        answer = urllib3.request("POST", self.url + path.lstrip("/"), fields=body or None, timeout=30, retries=False)
        return answer.status, json.loads(answer.data or b"null")

    def wait_for_status(self, request_id: str, statuses: set[str], timeout: float = 120) -> dict:
        """Follows the job's `status_update`s on the WebSocket (subscribed before reading its current status, so no
        change can slip between the two) until it reaches one of `statuses`."""
        socket_url = self.url.replace("http://", "ws://") + "ws"
        connection = websocket.create_connection(socket_url, timeout=timeout)
        try:
            deadline = time.monotonic() + timeout
            status = self.get_json(f"api/status/{request_id}")
            while status["status"] not in statuses:
                connection.settimeout(max(0.001, deadline - time.monotonic()))
                try:
                    message = json.loads(connection.recv())
                except websocket.WebSocketTimeoutException:
                    raise AssertionError(f"{request_id} never reached {statuses}; last: {status}") from None
                if message.get("type") == "status_update" and message.get("request_id") == request_id:
                    status = message
            return status
        finally:
            connection.close()


READY_LOG_LINES = ("listening on", "engine ready")


class ServiceLog:
    """Copies the service's output to its log file line by line, and lets tests wait for lines to appear."""

    def __init__(self, stream, path: Path):
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._copy, args=(stream, path), daemon=True)
        self._thread.start()

    def _copy(self, stream, path: Path) -> None:
        with open(path, "ab") as log:
            for raw in stream:
                log.write(raw)
                log.flush()
                with self._changed:
                    self.lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, condition, timeout: float = READY_TIMEOUT_S) -> bool:
        """True once `condition(lines)` holds; False if the output ended (the process exited) or time ran out."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self.lines) or self.ended, timeout) and condition(
                self.lines
            )


def running_service(tmp_path_factory, name: str, extra_args: tuple[str, ...] = ()):
    """Starts the built service in a fresh folder, yields it, stops it."""
    if not BINARY.exists():
        pytest.skip(f"the service binary {BINARY} is not built yet (run `swift build` or `make test-web`)")
    folder = tmp_path_factory.mktemp(name)
    service = ServiceProcess(folder / "data", folder / "service.log", extra_args)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    yield from running_service(tmp_path_factory, "service")


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A service of the module's own, for tests whose requests must not disturb the shared one's queue."""
    yield from running_service(tmp_path_factory, "own-service")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A service of the module's own with API keys required (`--auth on`)."""
    yield from running_service(tmp_path_factory, "auth-service", ("--auth", "on"))


@pytest.fixture(scope="session")
def config(server) -> dict:
    return server.get_json("api/config")


@pytest.fixture(scope="session")
def media() -> Path:
    for name in ("astronaut.png", "speech-en.wav"):
        assert (MEDIA / name).exists(), f"test media {MEDIA / name} is missing"
    return MEDIA


@pytest.fixture(scope="session")
def downloads() -> Path:
    return Path(tempfile.mkdtemp(prefix="infinitetalk-downloads-"))


@pytest.fixture(scope="session")
def browser(downloads):
    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


@dataclass
class Page:
    """The page under test in the shared browser, with helpers that read like what a person does."""

    driver: webdriver.Chrome
    server: ServiceProcess
    # Console errors a test provokes on purpose, e.g. the network error of an upload the server refuses.
    expected_console_errors: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.driver.get(self.server.url)
        self.wait_until(
            lambda d: d.execute_script("return document.documentElement.dataset.state") == "ready",
            timeout=20,
            message="the page never finished loading",
        )

    def wait_until(self, condition, timeout: float = 20, message: str = ""):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition, message)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def use_phone_width(self) -> None:
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        )

    def use_desktop_width(self) -> None:
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        """Saves a PNG under artifacts/screenshots/, the whole page unless told otherwise."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if full_page:
            metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = metrics["cssContentSize"]
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
                },
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[dict]:
        return [
            entry
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
            and not any(re.search(pattern, entry["message"]) for pattern in self.expected_console_errors)
        ]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(server, browser, request):
    """A freshly loaded page at desktop width; the test fails on any unexpected console error."""
    browser.get_log("browser")  # drop what earlier pages logged
    current = Page(browser, server)
    current.use_desktop_width()
    current.open()
    yield current
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        current.screenshot(f"failed-{request.node.name}", full_page=False)
    errors = current.console_errors()
    browser.get("about:blank")  # leave the page before the next test, so its unload logs nothing there
    browser.get_log("browser")
    current.use_desktop_width()
    assert not errors, "JavaScript console errors:\n" + "\n".join(entry["message"] for entry in errors)
