"""The page's modules on their own, in the real browser: states the preview engine cannot be made to produce on
demand (a failed job), and the merge rules that keep the live view consistent when messages race."""

from __future__ import annotations

import base64
import shutil

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
