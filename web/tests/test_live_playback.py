"""Watching a video while it is made (issue 11), in headless Chromium against the real service and preview engine.

The page plays the job's live stream (HLS segments through Media Source Extensions) while the job is still
processing, then the final MP4 once it is done. The preview engine is fast, so the test holds it (SIGSTOP) once the
first clip is ready: the job then certainly stays `processing` while the page plays, however fast the machine; the
engine is released (SIGCONT) to finish. The test service's heartbeat timeout (conftest) is long enough that the held
engine is never taken for a hung one. Screenshots of both states land in artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from test_browser import card_status, choose_files, long_recording, submit_and_get_id, wait_for_previews

# The card's <video>: what it plays, how far it is, and whether it can show pictures.
VIDEO_STATE = """
const video = document.querySelector(`#jobs .job[data-request-id='${arguments[0]}'] .job-result video`);
return video && { src: video.getAttribute('src'), currentTime: video.currentTime, paused: video.paused,
                  readyState: video.readyState, width: video.videoWidth };
"""


def engine_processes(service_pid: int) -> list[int]:
    """The engine processes the service started (its descendants running `infinitetalk_engine`)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [service_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            with contextlib.suppress(OSError):
                if b"infinitetalk_engine" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
    return found


@contextlib.contextmanager
def engine_held(server):
    """Stops the engine where it is (as a slow GPU would be) and lets it go on afterwards, whatever happens."""
    pids = engine_processes(server.process.pid)
    assert pids, "the service's engine process was not found"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_the_page_plays_the_video_while_it_is_made_then_the_final_mp4(page, server, media, tmp_path):
    # A minute of speech: fifteen 4 s clips for the preview engine.
    recording = long_recording(media / "speech-en.wav", tmp_path / "minute.mp3", repeats=6)
    choose_files(page, media / "astronaut.png", recording)
    wait_for_previews(page)
    request_id = submit_and_get_id(page)

    # The first clip is ready while the job runs: hold the engine there.
    page.wait_until(
        lambda _: (
            server.get_json(f"api/status/{request_id}").get("segments_ready", 0) > 0
            or card_status(page, request_id) in {"completed", "failed", "cancelled"}
        ),
        timeout=180,
        message="no clip was ever ready",
    )
    with engine_held(server):
        status = server.get_json(f"api/status/{request_id}")
        assert status["status"] == "processing", f"the job ended before its first clip could be watched: {status}"
        assert status["playlist_url"] == f"/api/result/{request_id}/live.m3u8", status

        # The page plays the live stream: its time moves on while the job is still processing.
        times: list[float] = []

        def plays_while_processing(_) -> bool:
            video = page.js(VIDEO_STATE, request_id)
            if not video or not video["src"].startswith("blob:"):
                return False
            if video["currentTime"] > 0:
                times.append(video["currentTime"])
            return len(times) >= 2 and times[-1] > times[0]

        page.wait_until(plays_while_processing, timeout=60, message=f"the live video never played: {times}")
        assert server.get_json(f"api/status/{request_id}")["status"] == "processing"
        assert card_status(page, request_id) == "processing"
        assert page.js(
            "return !document.querySelector(`#jobs .job[data-request-id='${arguments[0]}'] .cancel`).hidden",
            request_id,
        ), "cancel stays one click away while watching"
        note = page.js(
            "return document.querySelector(`#jobs .job[data-request-id='${arguments[0]}'] .live-note`).textContent",
            request_id,
        )
        assert note.startswith("Live preview:"), note
        page.screenshot("desktop-live-playback")

    # Once the job is done, the same <video> holds the final MP4, from about where the live stream was.
    server.wait_for_status(request_id, {"completed"}, timeout=300)
    result_url = f"/api/result/{request_id}"
    page.wait_until(
        lambda _: (
            (video := page.js(VIDEO_STATE, request_id))
            and video["src"].endswith(result_url)
            and video["readyState"] >= 1
            and video["width"] > 0
            and video["currentTime"] >= times[-1] - 0.5
        ),
        timeout=60,
        message=f"the final MP4 was never shown: {page.js(VIDEO_STATE, request_id)}",
    )
    page.screenshot("desktop-live-then-final")
