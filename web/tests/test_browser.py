"""The web page in headless Chromium against the real service running the preview engine.

Each test reads as what a person does on the page and what they must see. Screenshots land in
artifacts/screenshots/ (desktop and phone width). Any unexpected JavaScript console error fails the test.
"""

from __future__ import annotations

import base64
import re
import subprocess
import urllib.request
import wave
import zipfile
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

REFUSED_UPLOAD_LOG = r"api/generate - Failed to load resource: the server responded with a status of 4\d\d"


# MARK: - Helpers

# Counts the uploads the page starts (`window.__generateRequests`): it sends forms with XMLHttpRequest only.
COUNT_UPLOADS = """
window.__generateRequests = 0;
const realOpen = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  if (String(url).includes("api/generate")) window.__generateRequests += 1;
  return realOpen.call(this, method, url, ...rest);
};
"""

# Sends the page's WebSocket connections to a closed port while `window.__holdWebSockets` is true.
HOLD_WEBSOCKETS = """
window.__holdWebSockets = true;
const RealWebSocket = window.WebSocket;
window.WebSocket = class extends RealWebSocket {
  constructor(url, protocols) {
    super(window.__holdWebSockets ? "ws://127.0.0.1:9/held" : url, protocols);
  }
};
"""


def choose_files(page, image: Path, audio: Path) -> None:
    page.driver.find_element(By.ID, "image-input").send_keys(str(image))
    page.driver.find_element(By.ID, "audio-input").send_keys(str(audio))


def wait_for_previews(page) -> None:
    page.wait_until(
        lambda d: d.execute_script(
            "return document.querySelector('#image-drop .preview-image').naturalWidth > 0"
            " && document.getElementById('audio-drop').dataset.duration !== undefined"
        ),
        message="the previews never loaded",
    )


def submit_and_get_id(page) -> str:
    """Clicks "Generate video" and returns the new job's id, from the card the page adds for it."""
    known = set(page.js("return [...document.querySelectorAll('#jobs .job')].map(c => c.dataset.requestId)"))
    page.driver.find_element(By.ID, "submit-button").click()
    # Uploads are slow through a debug build on a busy machine (seconds per MB).
    page.wait_until(
        lambda d: "queued" in d.find_element(By.ID, "submit-status").text,
        timeout=60,
        message="the page never said the video was queued",
    )
    ids = page.js("return [...document.querySelectorAll('#jobs .job')].map(c => c.dataset.requestId)")
    new = [request_id for request_id in ids if request_id not in known]
    assert len(new) == 1, f"expected one new job card, got {new}"
    return new[0]


def card(page, request_id: str):
    return page.driver.find_element(By.CSS_SELECTOR, f'#jobs .job[data-request-id="{request_id}"]')


def card_status(page, request_id: str) -> str:
    return page.js(
        "const c = document.querySelector(`#jobs .job[data-request-id='${arguments[0]}']`);"
        "return c ? c.dataset.status : null",
        request_id,
    )


def wait_for_card_status(page, request_id: str, statuses: set[str], timeout: float = 120) -> str:
    page.wait_until(
        lambda _: card_status(page, request_id) in statuses,
        timeout=timeout,
        message=f"job {request_id} never showed {statuses}",
    )
    return card_status(page, request_id)


def audio_seconds(path: Path) -> float:
    with wave.open(str(path)) as recording:
        return recording.getnframes() / recording.getframerate()


def expected_mb(limit_bytes: int) -> str:
    """The page's wording of a byte limit (binary megabytes, no decimals when whole)."""
    megabytes = limit_bytes / 1024 / 1024
    return f"{megabytes:.0f} MB" if megabytes.is_integer() else f"{megabytes:.1f} MB"


def has_no_horizontal_scroll(page) -> bool:
    return page.js("return document.documentElement.scrollWidth <= window.innerWidth")


# Records every value a progress bar takes, per job, with the stage shown at that moment.
RECORD_PROGRESS = """
window.progressSeen = [];
const record = () => {
  for (const job of document.querySelectorAll('#jobs .job[data-status="processing"]')) {
    const value = job.querySelector('progress').value;
    const stage = job.querySelector('.stage-label').textContent;
    const last = window.progressSeen.filter(s => s.id === job.dataset.requestId).at(-1);
    if (!last || last.value !== value || last.stage !== stage) {
      window.progressSeen.push({id: job.dataset.requestId, value, stage});
    }
  }
};
new MutationObserver(record).observe(document.getElementById('jobs'),
  {subtree: true, childList: true, attributes: true, characterData: true});
"""


# MARK: - Loading and limits


def test_page_shows_the_servers_limits_engine_and_live_connection(page, config):
    page.wait_until(
        lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "live",
        message="the WebSocket never connected",
    )
    image_hint = page.driver.find_element(By.ID, "image-hint").text
    audio_hint = page.driver.find_element(By.ID, "audio-hint").text
    assert expected_mb(config["limits"]["max_image_bytes"]) in image_hint
    assert expected_mb(config["limits"]["max_audio_bytes"]) in audio_hint
    assert str(config["limits"]["min_image_side"]) in image_hint

    banner = page.driver.find_element(By.ID, "preview-banner")
    assert banner.is_displayed() == bool(config["engine"]["is_preview"])
    assert config["engine"]["is_preview"], "these tests run the preview engine: the banner must say so"
    assert "stand-in" in banner.text
    badge = page.driver.find_element(By.ID, "engine-badge").text
    assert "Preview engine" in badge and config["engine"]["version"] in badge

    second_speaker = page.driver.find_element(By.ID, "audio2-drop")
    assert not config["engine"]["two_speakers"], "the preview engine animates one person"
    assert not second_speaker.is_displayed(), "no second-speaker zone for a one-speaker engine"

    resolutions = [
        radio.get_attribute("value") for radio in page.driver.find_elements(By.CSS_SELECTOR, "input[name=resolution]")
    ]
    assert resolutions == config["resolutions"]
    checked = page.driver.find_element(By.CSS_SELECTOR, "input[name=resolution]:checked").get_attribute("value")
    assert checked == config["defaults"]["resolution"]
    page.screenshot("desktop-start")


# MARK: - Choosing files


def test_dropped_files_are_previewed_with_size_and_duration(page, media):
    # When both files are dropped together on the image zone, each goes to its own zone.
    files = [
        {"name": name, "type": kind, "data": base64.b64encode((media / name).read_bytes()).decode()}
        for name, kind in (("astronaut.png", "image/png"), ("speech-en.wav", "audio/wav"))
    ]
    page.js(
        """
      const [zoneId, files] = arguments;
      const transfer = new DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
        transfer.items.add(new File([bytes], f.name, {type: f.type}));
      }
      const zone = document.getElementById(zoneId);
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
      }""",
        "image-drop",
        files,
    )
    wait_for_previews(page)

    image_detail = page.driver.find_element(By.CSS_SELECTOR, "#image-drop .preview-detail").text
    assert image_detail.startswith("512 × 512 px"), image_detail
    audio_detail = page.driver.find_element(By.CSS_SELECTOR, "#audio-drop .preview-detail").text
    assert audio_detail.startswith(f"{audio_seconds(media / 'speech-en.wav'):.1f} s"), audio_detail
    assert page.driver.find_element(By.CSS_SELECTOR, "#audio-drop audio").get_attribute("src").startswith("blob:")
    assert page.driver.find_element(By.CSS_SELECTOR, "#image-drop .preview-name").text == "astronaut.png"


def test_wrong_files_and_bad_options_are_refused_before_uploading(page, server, media, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    total_before = server.get_json("api/requests?limit=1")["total"]
    page.js(COUNT_UPLOADS)

    choose_files(page, notes, media / "speech-en.wav")
    page.driver.find_element(By.CSS_SELECTOR, "details.advanced summary").click()
    page.driver.find_element(By.ID, "seed-input").send_keys("12x")
    page.driver.find_element(By.ID, "steps-input").send_keys("999")
    page.driver.find_element(By.ID, "submit-button").click()
    # The page has finished checking, and decided not to send: it says so (a sent form would say "Uploading…").
    page.wait_until(
        lambda d: d.find_element(By.ID, "submit-status").text == "Please fix the marked fields.",
        message="the page never finished checking the form",
    )

    image_message = page.driver.find_element(By.ID, "image-message")
    assert "notes.txt" in image_message.text and "not a supported image" in image_message.text
    assert page.driver.find_element(By.ID, "image-input").get_attribute("aria-invalid") == "true"
    assert "whole number" in page.driver.find_element(By.ID, "seed-message").text
    assert page.driver.find_element(By.ID, "seed-input").get_attribute("aria-invalid") == "true"
    assert "Steps must be" in page.driver.find_element(By.ID, "steps-message").text
    # Keyboard users land on the first problem.
    assert page.js("return document.activeElement.id") == "image-input"
    page.use_phone_width()
    page.screenshot("phone-client-checks")
    # No upload was started: the page's only upload path (XMLHttpRequest to api/generate) counts none.
    assert page.js("return window.__generateRequests") == 0
    assert server.get_json("api/requests?limit=1")["total"] == total_before


def test_server_refusal_is_shown_word_for_word(page, server, media, tmp_path):
    # Looks like a PNG to the browser (name and magic bytes), so only the server can refuse it.
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not image data " * 8)
    status, answer = server.post("api/generate", files={"image": broken, "audio": media / "speech-en.wav"})
    assert 400 <= status < 500, answer
    page.expected_console_errors.append(REFUSED_UPLOAD_LOG)

    choose_files(page, broken, media / "speech-en.wav")
    page.driver.find_element(By.ID, "submit-button").click()
    page.wait_until(
        lambda d: d.find_element(By.ID, "form-error").is_displayed(), message="the server's refusal was never shown"
    )

    assert page.driver.find_element(By.ID, "form-error-message").text == answer["error"]["message"]
    assert answer["error"]["code"] in page.driver.find_element(By.ID, "form-error-code").text
    if answer["error"].get("field") == "image":
        assert page.driver.find_element(By.ID, "image-message").text == answer["error"]["message"]
    page.use_phone_width()
    page.js("document.getElementById('form-error').scrollIntoView({block: 'center'})")
    page.screenshot("phone-server-refusal", full_page=False)


# MARK: - A job from start to finish


def test_a_job_shows_progress_then_plays_and_downloads(page, server, media, downloads):
    page.js(RECORD_PROGRESS)
    choose_files(page, media / "astronaut.png", media / "speech-en.wav")
    wait_for_previews(page)
    page.driver.find_element(By.CSS_SELECTOR, "details.advanced summary").click()
    page.driver.find_element(By.ID, "seed-input").send_keys("42")
    request_id = submit_and_get_id(page)

    page.wait_until(
        lambda _: card_status(page, request_id) == "processing", timeout=60, message="the job never started"
    )
    # For the screenshot, a bar well under way (unless the job is already past it).
    page.wait_until(
        lambda _: (
            card_status(page, request_id) != "processing"
            or page.js(
                "return document.querySelector(`#jobs .job[data-request-id='${arguments[0]}'] progress`).value",
                request_id,
            )
            >= 0.3
        ),
        timeout=60,
    )
    page.screenshot("desktop-running")
    wait_for_card_status(page, request_id, {"completed"}, timeout=150)

    # Progress moved forward while it ran, through the engine's stages.
    seen = [step for step in page.js("return window.progressSeen") if step["id"] == request_id]
    values = [step["value"] for step in seen]
    assert any(0 < value < 1 for value in values), f"no progress between 0 and 1 was shown: {seen}"
    assert len(set(values)) >= 2, f"the progress bar never moved: {seen}"
    assert values == sorted(values), f"the progress bar went backwards: {values}"
    assert {step["stage"] for step in seen} - {"Starting"}, f"no engine stage was shown: {seen}"

    status = server.get_json(f"api/status/{request_id}")
    assert status["params"]["seed"] == 42
    job = card(page, request_id)
    assert "seed 42" in job.find_element(By.CSS_SELECTOR, ".job-params").text

    # The video loads and plays inline.
    played = page.driver.execute_async_script(
        """
      const [id, done] = arguments;
      const video = document.querySelector(`#jobs .job[data-request-id='${id}'] video`);
      video.muted = true;
      const finish = () => done({time: video.currentTime, width: video.videoWidth, error: null});
      video.play().then(() => setTimeout(finish, 600)).catch(error => done({error: String(error)}));
    """,
        request_id,
    )
    assert played["error"] is None, played
    assert played["time"] > 0 and played["width"] > 0, played
    page.js("document.querySelector(`#jobs .job[data-request-id='${arguments[0]}'] video`).pause()", request_id)
    page.screenshot("desktop-finished")

    # The download button saves the MP4 the server made.
    job.find_element(By.CSS_SELECTOR, "a.download").click()
    saved = downloads / f"infinitetalk-{request_id}.mp4"
    page.wait_until(
        lambda _: saved.exists() and saved.stat().st_size > 0, timeout=30, message=f"{saved.name} was never downloaded"
    )
    page.wait_until(lambda _: not list(downloads.glob("*.crdownload")), timeout=30)
    content = saved.read_bytes()
    assert content[4:8] == b"ftyp", "the download is not an MP4"
    if status.get("result") and status["result"].get("bytes"):
        assert len(content) == status["result"]["bytes"]

    page.use_phone_width()
    page.wait_until(
        lambda _: has_no_horizontal_scroll(page), timeout=5, message="the page scrolls sideways at phone width"
    )
    page.screenshot("phone-finished")


def long_recording(source: Path, destination: Path, repeats: int) -> Path:
    """The source said `repeats` times over, as a small MP3 (ffmpeg is one of the project's Debian packages):
    a job long enough to still be running when the next arrives, quick to upload."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            str(repeats - 1),
            "-i",
            str(source),
            "-c:a",
            "libmp3lame",
            "-b:a",
            "32k",
            str(destination),
        ],
        check=True,
    )
    return destination


def test_a_waiting_job_and_a_running_job_can_be_cancelled(page, server, media, tmp_path):
    # The preview engine is fast: the first job gets a long recording so that it is still running when the
    # second one arrives (the service runs one job at a time).
    choose_files(page, media / "astronaut.png", long_recording(media / "speech-en.wav", tmp_path / "long.mp3", 10))
    wait_for_previews(page)
    first = submit_and_get_id(page)
    page.driver.find_element(By.ID, "audio-input").send_keys(str(media / "speech-en.wav"))
    wait_for_previews(page)
    second = submit_and_get_id(page)

    # With one job at a time, the second waits and shows its place in the queue.
    wait_for_card_status(page, second, {"queued"}, timeout=10)
    page.wait_until(
        lambda _: re.search(
            r"Position \d+ in the queue", card(page, second).find_element(By.CSS_SELECTOR, ".job-queue").text
        ),
        message="the waiting job never showed its position",
    )
    page.wait_until(lambda d: d.find_element(By.ID, "queue-waiting").text.startswith(("1 ", "2 ")))
    page.screenshot("desktop-queue")

    card(page, second).find_element(By.CSS_SELECTOR, "button.cancel").click()
    wait_for_card_status(page, second, {"cancelled"}, timeout=10)
    assert server.get_json(f"api/status/{second}")["status"] == "cancelled"
    assert not card(page, second).find_element(By.CSS_SELECTOR, "button.cancel").is_displayed()

    # The first is still running: cancelling it stops it.
    assert card_status(page, first) == "processing"
    card(page, first).find_element(By.CSS_SELECTOR, "button.cancel").click()
    wait_for_card_status(page, first, {"cancelled"}, timeout=15)
    assert server.wait_for_status(first, {"cancelled"}, timeout=10)["status"] == "cancelled"


def test_history_is_kept_across_reloads(page, server, media):
    completed = server.get_json("api/requests?status=completed&limit=1")["requests"]
    if completed:
        request_id = completed[0]["request_id"]
    else:
        status, answer = server.post(
            "api/generate", files={"image": media / "astronaut.png", "audio": media / "speech-en.wav"}
        )
        assert status == 200, answer
        request_id = answer["request_id"]
        server.wait_for_status(request_id, {"completed"}, timeout=150)

    page.driver.refresh()
    page.wait_until(lambda d: d.execute_script("return document.documentElement.dataset.state") == "ready")
    wait_for_card_status(page, request_id, {"completed"}, timeout=10)
    video = card(page, request_id).find_element(By.CSS_SELECTOR, "video")
    assert video.get_attribute("src").endswith(f"/api/result/{request_id}")
    download = card(page, request_id).find_element(By.CSS_SELECTOR, "a.download")
    assert download.get_attribute("href").endswith(f"/api/result/{request_id}")
    history = server.get_json("api/requests?limit=20")["requests"]
    shown = page.js("return [...document.querySelectorAll('#jobs .job')].map(c => c.dataset.requestId)")
    assert shown[: len(history)] == [job["request_id"] for job in history], "the page's history differs from the API"


# MARK: - Accessibility


def test_controls_are_labelled_and_reachable_by_keyboard(page):
    page.driver.find_element(By.CSS_SELECTOR, "details.advanced summary").click()
    unnamed = page.js("""
      const nameOf = (el) => (el.getAttribute('aria-label') || [...(el.labels || [])].map(l => l.textContent).join(' ')
                              || el.textContent || '').trim();
      return [...document.querySelectorAll('input, textarea, select, button, a[href], summary')]
        .filter(el => el.getClientRects().length > 0 || el.type === 'file')
        .filter(el => !nameOf(el)).map(el => el.outerHTML.slice(0, 120));""")
    assert unnamed == [], f"controls without an accessible name: {unnamed}"

    page.js("document.querySelector('.skip-link').focus()")  # where a first Tab lands
    reached = []
    for _ in range(14):
        reached.append(page.js("const e = document.activeElement; return e.id || e.name || e.tagName.toLowerCase()"))
        ActionChains(page.driver).send_keys(Keys.TAB).perform()  # typed into a file input, it would be a path
    expected_order = ["image-input", "audio-input", "resolution", "prompt-input", "summary", "seed-input"]
    positions = [reached.index(name) for name in expected_order if name in reached]
    assert len(positions) == len(expected_order) and positions == sorted(positions), reached


CONTRAST_FAILURES = """
const parse = (text) => {
  const parts = (text.match(/rgba?\\(([^)]+)\\)/) || [, ''])[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  return parts.length >= 3 ? {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1} : null;
};
const over = (top, bottom) => ({r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
                                 b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
const background = (element) => {
  const layers = [];
  for (let el = element; el; el = el.parentElement) {
    const color = parse(getComputedStyle(el).backgroundColor);
    if (color && color.a > 0) layers.push(color);
    if (color && color.a === 1) break;
  }
  return layers.reverse().reduce((below, layer) => over(layer, below), {r: 255, g: 255, b: 255, a: 1});
};
const luminance = ({r, g, b}) => {
  const [R, G, B] = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * R + 0.7152 * G + 0.0722 * B;
};
const failures = [];
for (const el of document.querySelectorAll('body *')) {
  const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!ownText || el.getClientRects().length === 0 || el.closest('video, audio, .visually-hidden')) continue;
  const style = getComputedStyle(el);
  if (style.visibility === 'hidden') continue;
  const bg = background(el);
  const fg = over(parse(style.color), bg);
  const [light, dark] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  const ratio = (light + 0.05) / (dark + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)}: ${el.textContent.trim().slice(0, 50)}`);
}
return failures;
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_meets_wcag_aa(page, media, tmp_path, scheme):
    page.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )
    try:
        # Show the states worth checking: a chosen file, a refused one, the advanced options, the job list.
        notes = tmp_path / "notes.txt"
        notes.write_text("not a picture")
        choose_files(page, notes, media / "speech-en.wav")
        page.driver.find_element(By.CSS_SELECTOR, "details.advanced summary").click()
        page.wait_until(lambda d: d.find_element(By.ID, "image-message").text != "")
        failures = page.js(CONTRAST_FAILURES)
        if scheme == "dark":
            page.screenshot("desktop-dark")
    finally:
        page.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert failures == [], f"text below WCAG AA contrast ({scheme}): {failures}"


# MARK: - Reconnection (restarts the service: keep last)


def test_live_updates_reconnect_and_resync_after_a_server_restart(page, server, media):
    page.expected_console_errors += [
        r"WebSocket connection to .* failed",
        r"ERR_CONNECTION_REFUSED",
        r"Failed to load resource: net::",
    ]
    connection = lambda d: d.find_element(By.ID, "connection").get_attribute("data-state")  # noqa: E731
    page.wait_until(lambda d: connection(d) == "live", message="the WebSocket never connected")

    server.stop()
    page.wait_until(
        lambda d: "Offline" in d.find_element(By.ID, "connection-text").text,
        timeout=15,
        message="the page never noticed the connection was lost",
    )
    page.screenshot("desktop-offline", full_page=False)
    # Keep the page away while the job below comes and goes, whatever its backoff timer says: its connection
    # attempts go to a closed port until released (as if the network were still down).
    page.js(HOLD_WEBSOCKETS)
    server.start()

    # A job that comes and goes while the page is away appears only through the resync from the API.
    status, answer = server.post(
        "api/generate", files={"image": media / "astronaut.png", "audio": media / "speech-en.wav"}
    )
    assert status == 200, answer
    request_id = answer["request_id"]
    server.post(f"api/cancel/{request_id}")
    assert server.wait_for_status(request_id, {"cancelled"}, timeout=10)["status"] == "cancelled"
    assert connection(page.driver) != "live", "the page must not have seen the job live"

    # The network comes back: the page retries at once (its `online` handler) and resyncs.
    page.js("window.__holdWebSockets = false; window.dispatchEvent(new Event('online'));")
    page.wait_until(lambda d: connection(d) == "live", timeout=30, message="the page never reconnected")
    wait_for_card_status(page, request_id, {"cancelled"}, timeout=10)


def test_several_recordings_with_one_portrait_make_a_batch_with_download_all(page, media, tmp_path):
    # Given a portrait and two recordings dropped together
    speech = (media / "speech-en.wav").read_bytes()
    files = [
        {
            "name": "astronaut.png",
            "type": "image/png",
            "data": base64.b64encode((media / "astronaut.png").read_bytes()),
        },
        {"name": "first.wav", "type": "audio/wav", "data": base64.b64encode(speech)},
        {"name": "second.wav", "type": "audio/wav", "data": base64.b64encode(speech)},
    ]
    page.js(
        """
      const files = arguments[0];
      const transfer = new DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
        transfer.items.add(new File([bytes], f.name, {type: f.type}));
      }
      const zone = document.getElementById('audio-drop');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
      }""",
        [{**f, "data": f["data"].decode()} for f in files],
    )
    wait_for_previews(page)
    note = page.driver.find_element(By.CSS_SELECTOR, "#audio-drop .batch-note").text
    assert "1 more recording: second.wav" in note, note
    # When it is sent, the page shows one batch of two videos
    page.driver.find_element(By.ID, "submit-button").click()
    page.wait_until(
        lambda d: "Batch of 2 videos queued" in d.find_element(By.ID, "submit-status").text,
        timeout=60,
        message="the page never said the batch was queued",
    )
    batch = page.driver.find_element(By.CSS_SELECTOR, "#batches .batch")
    batch_id = batch.get_attribute("data-batch-id")
    ids = page.js("return [...document.querySelectorAll('#jobs .job')].map(c => c.dataset.requestId)")
    server_batch = page.server.get_json(f"api/batches/{batch_id}")
    assert {r["request_id"] for r in server_batch["requests"]} <= set(ids)
    # Then, once both are done, it offers them all as one download
    page.wait_until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#batches .batch").get_attribute("data-done") == "2",
        timeout=240,
        message="the batch never finished",
    )
    link = page.driver.find_element(By.CSS_SELECTOR, "#batches .batch a")
    assert link.is_displayed() and link.get_attribute("href").endswith(f"/api/batches/{batch_id}/results.zip")
    assert "2 videos · 2 done" in page.driver.find_element(By.CSS_SELECTOR, "#batches .batch-title").text
    with urllib.request.urlopen(link.get_attribute("href"), timeout=60) as answer:
        archive = tmp_path / "batch.zip"
        archive.write_bytes(answer.read())
    with zipfile.ZipFile(archive) as videos:
        assert videos.testzip() is None and len(videos.namelist()) == 2
