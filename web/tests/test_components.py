"""The page's modules on their own, in the real browser: states the preview engine cannot be made to produce on
demand (a failed job), and the merge rules that keep the live view consistent when messages race."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest

RENDER_CARD = """
const [job, done] = arguments;
import('./ui/job-card.js').then(({ JobCard }) => {
  const card = new JobCard(job.request_id, async () => {});
  card.update(job);
  const text = (selector) => card.element.querySelector(selector)?.textContent ?? null;
  const shown = (selector) => !card.element.querySelector(selector).hidden;
  done({
    pill: text('.status-pill'), problem: text('.job-problem-message'), code: text('.job-problem-code'),
    problemShown: shown('.job-problem'), progressShown: shown('.job-progress'), cancelShown: shown('.cancel'),
    stage: text('.stage-label'), percent: text('.progress-percent'), detail: text('.job-detail'),
    queue: text('.job-queue'), queueShown: shown('.job-queue'),
  });
}).catch(error => done({ error: String(error) }));
"""

STORE = """
const [steps, done] = arguments;
import('./jobs-store.js').then(({ JobStore }) => {
  const store = new JobStore();
  for (const [kind, message] of steps) {
    if (kind === 'status') store.upsert(message);
    if (kind === 'progress') store.applyProgress(message);
    if (kind === 'queue') store.applyQueue(message);
    if (kind === 'clip') store.applyClipReady(message);
  }
  done([...store.jobs.values()]);
}).catch(error => done({ error: String(error) }));
"""

JOB_ID = "0f8e2c1a-1111-4222-8333-944455556666"


def status(**fields) -> dict:
    base = {
        "request_id": JOB_ID,
        "status": "queued",
        "message": "Request added to queue",
        "timestamp": "2026-11-25T14:30:00Z",
        "position_in_queue": 1,
        "estimated_seconds": 52.0,
        "result_url": None,
        "progress": None,
        "params": {"resolution": "480p", "steps": 4, "seed": 7},
        "error": None,
        "result": None,
    }
    return {**base, **fields}


def test_a_failed_job_shows_the_reason_and_its_code(page):
    shown = page.driver.execute_async_script(
        RENDER_CARD,
        status(
            status="failed",
            position_in_queue=None,
            message="Failed",
            error={"code": "no_face", "message": "no face was found in the image"},
        ),
    )
    assert shown.get("error") is None, shown
    assert shown["pill"] == "Failed"
    assert shown["problemShown"] and shown["problem"] == "no face was found in the image"
    assert "no_face" in shown["code"]
    assert not shown["cancelShown"] and not shown["progressShown"]


def test_a_running_job_shows_stage_clip_step_and_time_left(page):
    shown = page.driver.execute_async_script(
        RENDER_CARD,
        status(
            status="processing",
            position_in_queue=None,
            message="Clip 2 of 3, step 3 of 4",
            progress={
                "stage": "generating",
                "step": 3,
                "steps": 4,
                "clip": 2,
                "clips": 3,
                "progress": 0.58,
                "eta_seconds": 41.2,
            },
        ),
    )
    assert shown["progressShown"] and shown["cancelShown"] and not shown["queueShown"]
    assert shown["stage"] == "Generating frames"
    assert shown["percent"] == "58%"
    assert shown["detail"] == "Clip 2 of 3 · step 3 of 4 · about 40 s left"


def test_a_waiting_job_shows_its_position_and_estimate(page):
    shown = page.driver.execute_async_script(RENDER_CARD, status(position_in_queue=3, estimated_seconds=150))
    assert shown["queueShown"] and shown["queue"] == "Position 3 in the queue · ready in about 3 min"


def test_store_never_reopens_a_finished_job_nor_moves_progress_back(page):
    jobs = page.driver.execute_async_script(
        STORE,
        [
            ["status", status(status="processing", position_in_queue=None)],
            [
                "progress",
                {
                    "type": "progress_update",
                    "request_id": JOB_ID,
                    "stage": "generating",
                    "progress": 0.6,
                    "message": "Clip 1 of 1",
                },
            ],
            # A resync answer that left the server before the progress above: older, lower progress.
            [
                "status",
                status(
                    status="processing", position_in_queue=None, progress={"stage": "encoding_image", "progress": 0.1}
                ),
            ],
            ["status", status(status="completed", position_in_queue=None, result_url=f"/api/result/{JOB_ID}")],
            # A stale answer that still says "processing" must not undo "completed".
            ["status", status(status="processing", position_in_queue=None)],
        ],
    )
    assert len(jobs) == 1, jobs
    assert jobs[0]["status"] == "completed"
    assert jobs[0]["progress"]["progress"] == 0.6


def test_store_takes_queue_positions_from_queue_updates(page):
    other = "aaaaaaaa-1111-4222-8333-944455556666"
    jobs = page.driver.execute_async_script(
        STORE,
        [
            ["status", status(position_in_queue=2)],
            [
                "queue",
                {
                    "type": "queue_update",
                    "queue_size": 2,
                    "processing_count": 0,
                    "max_queue_size": 20,
                    "max_concurrent": 1,
                    "queued_ids": [JOB_ID, other],
                    "processing_ids": [],
                },
            ],
        ],
    )
    assert jobs[0]["position_in_queue"] == 1


TWO_SPEAKER_FORM = """
const [config, files, done] = arguments;
import('./ui/generate-form.js').then(async ({ GenerateForm }) => {
  const twoSpeakers = {...config, engine: {...config.engine, two_speakers: true}};
  const form = new GenerateForm(twoSpeakers, { onQueued: () => {} });
  const zone = document.getElementById('audio2-drop');
  const shown = !zone.hidden && zone.getBoundingClientRect().height > 0;
  const asFile = (f) => new File([Uint8Array.from(atob(f.data), c => c.charCodeAt(0))], f.name, {type: f.type});
  // Without a second recording the form is complete: the second speaker is optional.
  form.routeDrop(files.slice(0, 2).map(asFile), null);
  const oneSpeaker = await form.collect();
  // Two recordings dropped with the picture: the second goes to the second speaker.
  form.routeDrop(files.map(asFile), null);
  const twoSpeakersForm = await form.collect();
  const names = (collected) => collected.form ? [...collected.form.entries()]
      .filter(([, value]) => value instanceof File).map(([field, value]) => `${field}=${value.name}`) : null;
  done({ shown, one: names(oneSpeaker), two: names(twoSpeakersForm) });
}).catch(error => done({ error: String(error) }));
"""


def test_an_engine_for_two_people_gets_an_optional_second_speaker(page, config, media, tmp_path):
    second = tmp_path / "second-speaker.wav"
    shutil.copy(media / "speech-en.wav", second)
    files = [
        {"name": path.name, "type": kind, "data": base64.b64encode(path.read_bytes()).decode()}
        for path, kind in (
            (media / "astronaut.png", "image/png"),
            (media / "speech-en.wav", "audio/wav"),
            (second, "audio/wav"),
        )
    ]
    shown = page.driver.execute_async_script(TWO_SPEAKER_FORM, config, files)
    assert shown.get("error") is None, shown
    assert shown["shown"]
    assert shown["one"] == ["image=astronaut.png", "audio=speech-en.wav"]
    assert shown["two"] == ["image=astronaut.png", "audio=speech-en.wav", "audio2=second-speaker.wav"]
    page.screenshot("desktop-two-speakers")


OPTIONS_FORM = """
const [config, fields, done] = arguments;
import('./ui/options.js').then(({ OptionsForm }) => {
  const form = document.getElementById('generate-form');
  for (const [id, value] of Object.entries(fields)) form.querySelector('#' + id).value = value;
  const options = new OptionsForm(form, config);
  const { values, problems } = options.validate();
  const hidden = (id) => form.querySelector('#' + id).closest('.field').hidden;
  done({
    resolutions: [...form.querySelectorAll('input[name=resolution]')].map(r => [r.value, r.checked]),
    stepsHint: form.querySelector('#steps-hint').textContent,
    stepsPlaceholder: form.querySelector('#steps-input').placeholder,
    promptCount: form.querySelector('#prompt-count').textContent,
    negativePromptHidden: hidden('negative-prompt-input'), seedHidden: hidden('seed-input'),
    values, problems: problems.map(p => [p.input.id || p.input.name, p.message]),
  });
}).catch(error => done({ error: String(error) }));
"""


def engine_schema(server_config, **changes) -> dict:
    """The page's configuration with the engine's parameter schema changed (`name=spec`, or `name=None` to drop)."""
    parameters = [changes.get(spec["name"], spec) for spec in server_config["parameters"]]
    return {**server_config, "parameters": [spec for spec in parameters if spec is not None]}


def test_the_options_form_follows_the_engines_parameter_schema(page, config):
    # Given an engine that declares other resolutions, fewer steps, shorter prompts and no negative prompt
    specs = {spec["name"]: spec for spec in config["parameters"]}
    changed = engine_schema(
        config,
        resolution={**specs["resolution"], "choices": ["360p", "1080p"], "default": "1080p"},
        steps={**specs["steps"], "default": 6, "maximum": 8},
        prompt={**specs["prompt"], "max_length": 12},
        negative_prompt=None,
    )
    # When the form is built from it and filled in
    shown = page.driver.execute_async_script(
        OPTIONS_FORM, changed, {"steps-input": "9", "seed-input": "5", "prompt-input": "thirteen char"}
    )
    # Then it offers, defaults and checks what the engine declared
    assert shown.get("error") is None, shown
    assert shown["resolutions"] == [["360p", False], ["1080p", True]]
    assert shown["stepsHint"] == "1 to 8; empty uses the engine's default (6)." and shown["stepsPlaceholder"] == "6"
    assert shown["promptCount"] == "13 / 12"
    assert shown["negativePromptHidden"] and not shown["seedHidden"]
    assert shown["values"] == {"resolution": "1080p", "seed": "5"}
    assert shown["problems"] == [
        ["prompt-input", "The prompt has 13 characters; the limit is 12."],
        ["steps-input", "Steps must be a whole number from 1 to 8."],
    ]


# MARK: - Live playback (live-player.js): a real fMP4 stream, served to the page by a stand-in for the service

LIVE_BASE = f"/api/result/{JOB_ID}"
CLIP_SECONDS = 4
CLIPS = 3

# Answers the page's fetch() for the live routes from `window.liveRoutes` (path -> [status, base64 body]) and logs
# each such request's file name; anything else goes to the network.
SERVE_LIVE_ROUTES = """
window.liveRoutes = arguments[0];
window.liveFetched = [];
const networkFetch = window.fetch;
window.fetch = async (url, options) => {
  const path = new URL(url, location.href).pathname;
  const route = window.liveRoutes[path];
  if (!route) return networkFetch(url, options);
  window.liveFetched.push(path.split('/').pop());
  const [status, body] = route;
  return new Response(Uint8Array.from(atob(body), c => c.charCodeAt(0)), {status});
};
"""

START_PLAYER = """
const [playlistPath, done] = arguments;
import('./live-player.js').then(({ LivePlayer }) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.append(video);
  window.liveProblems = [];
  window.player = new LivePlayer(video, new URL(playlistPath, location.href),
                                 { onProblem: (error) => window.liveProblems.push(error.message) });
  done(null);
}).catch(error => done(String(error)));
"""

# Calls player.follow(n) for each n at once (as bursts of messages do), then reports what the player did.
FOLLOW = """
const [counts, done] = arguments;
Promise.all(counts.map(count => player.follow(count))).then(() => {
  const video = player.video;
  const ranges = [...Array(video.buffered.length).keys()].map(i => [video.buffered.start(i), video.buffered.end(i)]);
  done({ appended: player.appended, fetched: window.liveFetched, ranges, paused: video.paused,
         currentTime: video.currentTime, stream: player.mediaSource.readyState, closed: player.closed,
         problems: window.liveProblems });
});
"""


@pytest.fixture(scope="module")
def live_stream(tmp_path_factory) -> dict[str, bytes]:
    """Three 4 s clips of H.264 + AAC as CMAF segments (init.mp4, clip-0000N.m4s), made by ffmpeg like the engine's."""
    folder = tmp_path_factory.mktemp("live-stream")
    # fmt: off
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(CLIP_SECONDS * CLIPS),
            "-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-g", "100", "-keyint_min", "100", "-sc_threshold", "0",  # a key frame at each clip's start
            "-c:a", "aac",
            "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", str(CLIP_SECONDS),
            "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", "clip-%05d.m4s", "-start_number", "1",
            "ffmpeg.m3u8",
        ],
        cwd=folder,
        check=True,
    )
    # fmt: on
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.suffix in (".mp4", ".m4s")}


def live_playlist(clips: int, ended: bool = False) -> str:
    """The service's live playlist (docs/api.md) listing the first `clips` clips."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{CLIP_SECONDS}", "#EXT-X-PLAYLIST-TYPE:EVENT"]
    lines += ["#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-MEDIA-SEQUENCE:0", '#EXT-X-MAP:URI="live/init.mp4"']
    for clip in range(1, clips + 1):
        lines += [f"#EXTINF:{CLIP_SECONDS:.3f},", f"live/clip-{clip:05d}.m4s"]
    return "\n".join([*lines, "#EXT-X-ENDLIST"] if ended else lines) + "\n"


def live_routes(stream: dict[str, bytes], playlist: str | None, status: int = 200) -> dict[str, list]:
    encode = lambda data: base64.b64encode(data).decode()  # noqa: E731
    routes = {f"{LIVE_BASE}/live/{name}": [200, encode(data)] for name, data in stream.items()}
    no_segments = b'{"error": {"code": "no_segments_yet", "message": "No clip is ready yet."}}'
    routes[f"{LIVE_BASE}/live.m3u8"] = [status, encode(playlist.encode() if playlist else no_segments)]
    return routes


def list_clips(page, stream, clips: int, ended: bool = False) -> None:
    page.js("window.liveRoutes = arguments[0]", live_routes(stream, live_playlist(clips, ended)))


def test_the_playlist_is_read_for_its_init_segment_clips_and_end(page):
    playlist = live_playlist(2, ended=True)
    parsed = page.driver.execute_async_script(
        """
      const [text, done] = arguments;
      import('./live-player.js').then(({ parsePlaylist }) =>
        done(parsePlaylist(text, 'http://host/api/result/abc/live.m3u8')));""",
        playlist,
    )
    assert parsed == {
        "init": "http://host/api/result/abc/live/init.mp4",
        "segments": [
            {"url": "http://host/api/result/abc/live/clip-00001.m4s", "duration": 4},
            {"url": "http://host/api/result/abc/live/clip-00002.m4s", "duration": 4},
        ],
        "ended": True,
    }


def test_the_live_player_appends_each_new_clip_once_in_order_and_plays_without_a_gap(page, live_stream):
    # Given a job with one clip ready
    page.js(SERVE_LIVE_ROUTES, live_routes(live_stream, live_playlist(1)))
    assert page.driver.execute_async_script(START_PLAYER, f"{LIVE_BASE}/live.m3u8") is None
    # When the page hears of it, the player loads the init segment and the clip, and plays from the stream's start
    first = page.driver.execute_async_script(FOLLOW, [1])
    assert first["appended"] == 1 and first["fetched"] == ["live.m3u8", "init.mp4", "clip-00001.m4s"], first
    assert not first["paused"] and first["problems"] == [], first
    page.wait_until(
        lambda _: page.js("return player.video.currentTime") > first["ranges"][0][0],
        message="the live video never played",
    )

    # When more clips are announced, twice and out of order, each is fetched and appended once, in order
    list_clips(page, live_stream, 2)
    second = page.driver.execute_async_script(FOLLOW, [2, 2, 1])
    assert second["appended"] == 2, second
    assert [name for name in second["fetched"] if name.endswith(".m4s")] == ["clip-00001.m4s", "clip-00002.m4s"]

    # When the job ends, the stream ends: one continuous range from the first clip to the last
    list_clips(page, live_stream, 3, ended=True)
    last = page.driver.execute_async_script(FOLLOW, [3])
    assert last["appended"] == 3 and last["stream"] == "ended" and last["problems"] == [], last
    assert len(last["ranges"]) == 1, f"a gap between clips: {last['ranges']}"
    start, end = last["ranges"][0]
    assert end - start >= CLIP_SECONDS * CLIPS - 0.1, last["ranges"]


def test_the_live_player_waits_while_no_clip_is_ready(page, live_stream):
    page.js(SERVE_LIVE_ROUTES, live_routes(live_stream, None, status=404))
    page.driver.execute_async_script(START_PLAYER, f"{LIVE_BASE}/live.m3u8")
    waiting = page.driver.execute_async_script(FOLLOW, [1])
    assert waiting["appended"] == 0 and waiting["problems"] == [] and not waiting["closed"], waiting
    # The next announcement finds the clip.
    list_clips(page, live_stream, 1)
    playing = page.driver.execute_async_script(FOLLOW, [1])
    assert playing["appended"] == 1 and playing["problems"] == [], playing


def test_a_clip_the_server_refuses_stops_the_live_player_with_the_reason(page, live_stream):
    routes = live_routes(live_stream, live_playlist(2))
    routes[f"{LIVE_BASE}/live/clip-00002.m4s"] = [500, ""]
    page.js(SERVE_LIVE_ROUTES, routes)
    page.driver.execute_async_script(START_PLAYER, f"{LIVE_BASE}/live.m3u8")
    stopped = page.driver.execute_async_script(FOLLOW, [2])
    assert stopped["appended"] == 1 and stopped["closed"], stopped
    assert stopped["problems"] == ["clip-00002.m4s answered HTTP 500"], stopped


# Renders a card for `jobs[0]`, then updates it with each later job state; reports what it shows after each.
LIVE_CARD = """
const [jobs, done] = arguments;
import('./ui/job-card.js').then(async ({ JobCard }) => {
  const card = new JobCard(jobs[0].request_id, async () => {});
  document.body.append(card.element);
  const seen = [];
  for (const job of jobs) {
    card.update(job);
    await card.livePlayer?.running;
    const video = card.element.querySelector('.job-result video');
    const note = card.element.querySelector('.live-note');
    seen.push({ video: video ? video.getAttribute('src') : null, paused: video ? video.paused : null,
                note: note.hidden || card.element.querySelector('.job-progress').hidden ? null : note.textContent,
                cancelShown: !card.element.querySelector('.cancel').hidden,
                resultShown: !card.element.querySelector('.job-result').hidden });
  }
  card.element.remove();
  done(seen);
}).catch(error => done({ error: String(error) }));
"""


def live_job(**fields) -> dict:
    return status(
        status="processing",
        position_in_queue=None,
        segments_ready=1,
        playlist_url=f"{LIVE_BASE}/live.m3u8",
        live_seconds=4.0,
        **fields,
    )


def test_a_running_job_card_plays_the_video_so_far_then_the_final_mp4(page, live_stream):
    page.expected_console_errors.append(rf"{LIVE_BASE} - Failed to load resource: .* 404")  # no such job here
    page.js(SERVE_LIVE_ROUTES, live_routes(live_stream, live_playlist(1)))
    done = status(status="completed", position_in_queue=None, result_url=LIVE_BASE, result={"duration_seconds": 12})
    running, finished = page.driver.execute_async_script(LIVE_CARD, [live_job(), done])
    assert running["video"].startswith("blob:") and not running["paused"], running
    assert running["note"] == "Live preview: 4.0 s ready, more as it is made.", running
    assert running["cancelShown"] and running["resultShown"], "cancel stays one click away while watching"
    assert finished["video"].endswith(LIVE_BASE) and finished["note"] is None and not finished["cancelShown"]


def test_a_browser_without_media_source_waits_for_the_mp4_and_says_so(page):
    page.js("window.MediaSource = undefined")
    (shown,) = page.driver.execute_async_script(LIVE_CARD, [live_job()])
    assert shown["video"] is None and not shown["resultShown"], shown
    assert shown["note"] == "This browser cannot play the video while it is made; it appears here when it is done."


def test_store_takes_clips_ready_from_clip_ready_messages(page):
    clip = {
        "type": "clip_ready",
        "request_id": JOB_ID,
        "clips": 3,
        "playlist_url": f"{LIVE_BASE}/live.m3u8",
    }
    jobs = page.driver.execute_async_script(
        STORE,
        [
            ["status", status(status="processing", position_in_queue=None)],
            ["clip", {**clip, "clip": 1, "segments_ready": 1, "duration_seconds": 4.0}],
            ["clip", {**clip, "clip": 2, "segments_ready": 2, "duration_seconds": 8.0}],
        ],
    )
    assert jobs[0]["segments_ready"] == 2 and jobs[0]["live_seconds"] == 8.0
    assert jobs[0]["playlist_url"] == f"{LIVE_BASE}/live.m3u8"
