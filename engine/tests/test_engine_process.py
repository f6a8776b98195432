"""The real engine process, driven through stdin/stdout as the service drives it.

One preview engine serves most tests (module scope); shutdown, busy and load failures get their own processes.
Every line the engine prints is checked against docs/engine-protocol.schema.json by `EngineProcess`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
from engine_process import REPO, EngineProcess, job_message
from probe import assert_standard_mp4, ffprobe

from infinitetalk_engine.media.image import choose_bucket
from infinitetalk_engine.preview.engine import CLIP_FRAMES

STAGE_ORDER = ["decoding_audio", "audio_features", "encoding_image", "encoding_text", "generating", "encoding_video"]


@pytest.fixture(scope="module")
def engine():
    process = EngineProcess("--engine", "preview", "--max-jobs", "2")
    yield process
    process.close()


def assert_good_job(events: list[dict]) -> dict:
    """Stages in protocol order, monotonic progress in [0, 1], and exactly one outcome: done."""
    kinds = [e["type"] for e in events]
    assert kinds.count("done") + kinds.count("error") == 1, kinds
    done = events[-1]
    assert done["type"] == "done", done
    stages = [e["stage"] for e in events if e["type"] == "stage"]
    assert stages == sorted(stages, key=STAGE_ORDER.index)
    assert {"decoding_audio", "generating", "encoding_video"} <= set(stages)
    fractions = [e["fraction"] for e in events if e["type"] == "progress"]
    assert fractions == sorted(fractions) and fractions[0] >= 0 and fractions[-1] == 1.0
    return done


def audio_seconds(path) -> float:
    return float(ffprobe(path)["format"]["duration"])


# MARK: - handshake and bad input


def test_hello_then_ready_announce_a_preview_engine(engine):
    assert engine.hello["protocol_version"] == 1 and engine.hello["engine"] == "preview"
    capabilities = engine.hello["capabilities"]
    assert capabilities["is_preview"] is True and capabilities["fps"] == 25
    assert capabilities["max_concurrent_jobs"] == 2 and capabilities["two_speakers"] is False
    assert engine.ready["load_seconds"] >= 0


@pytest.mark.parametrize(
    "line, job_id",
    [
        ("this is not json", None),
        ('{"type": "teleport", "job_id": "t1"}', "t1"),
        ('{"type": "job", "job_id": "t2"}', "t2"),
        ('"just a string"', None),
    ],
)
def test_malformed_lines_get_bad_message_and_the_engine_keeps_serving(engine, line, job_id):
    engine.send_raw(line)
    error = engine.next_event("error")
    assert (error["code"], error["job_id"]) == ("bad_message", job_id)
    engine.send({"type": "heartbeat", "seq": 99})
    assert engine.next_event("heartbeat")["seq"] == 99


# MARK: - jobs


@pytest.mark.parametrize("extension", ["wav", "mp3", "m4a", "ogg", "flac"])
def test_every_audio_format_makes_a_25fps_h264_aac_mp4_as_long_as_the_audio(
    engine, tmp_path, audio_files, face_png, extension
):
    audio = audio_files[extension]
    output = tmp_path / "out.mp4"
    engine.send(job_message(f"fmt-{extension}", face_png, audio, output, seed=1))
    done = assert_good_job(engine.job_events(f"fmt-{extension}"))
    assert done["output_path"] == str(output) and done["fps"] == 25 and done["warnings"] == []
    assert (done["width"], done["height"]) == (640, 640)  # the square 480p bucket of a 512x512 face
    assert abs(done["duration_seconds"] - audio_seconds(audio)) <= 1 / 25 + 0.05  # + lossy codec padding
    assert_standard_mp4(output, done["frames"], 640, 640)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.parametrize("extension", ["jpg", "webp"])
def test_jpeg_and_webp_images_work(engine, tmp_path, image_files, speech_wav, extension):
    output = tmp_path / "out.mp4"
    engine.send(job_message(f"img-{extension}", image_files[extension], speech_wav, output))
    done = assert_good_job(engine.job_events(f"img-{extension}"))
    assert abs(done["duration_seconds"] - audio_seconds(speech_wav)) <= 1 / 25
    assert_standard_mp4(output, done["frames"], 640, 640)


def test_an_image_without_a_face_is_animated_at_its_centre_with_a_warning(engine, tmp_path, no_face_png, speech_wav):
    output = tmp_path / "out.mp4"
    engine.send(job_message("noface", no_face_png, speech_wav, output, resolution="720p"))
    done = assert_good_job(engine.job_events("noface"))
    assert any("no face" in warning for warning in done["warnings"])
    bucket = choose_bucket(480, 320, "720p")
    assert (done["width"], done["height"]) == (bucket.width, bucket.height)
    assert_standard_mp4(output, done["frames"], bucket.width, bucket.height)


@pytest.mark.parametrize(
    "image, audio, code",
    [
        ("face", "noise.wav", "bad_audio"),
        ("face", "text.mp3", "bad_audio"),
        ("face", "empty.wav", "bad_audio"),
        ("face", "missing.wav", "bad_audio"),
        ("noise.png", "speech", "bad_image"),
        ("truncated.png", "speech", "bad_image"),
        ("text.jpg", "speech", "bad_image"),
    ],
)
def test_corrupt_inputs_get_errors_with_the_right_code_and_leave_no_file(
    engine, tmp_path, corrupt_files, face_png, speech_wav, image, audio, code
):
    image_path = face_png if image == "face" else corrupt_files[image]
    audio_path = speech_wav if audio == "speech" else corrupt_files.get(audio, tmp_path / audio)
    engine.send(job_message("bad", image_path, audio_path, tmp_path / "out.mp4"))
    events = engine.job_events("bad")
    assert [e["type"] for e in events].count("error") == 1
    assert (events[-1]["code"], events[-1]["retryable"]) == (code, False)
    assert list(tmp_path.iterdir()) == []


def test_two_speaker_params_are_bad_params_for_the_preview(engine, tmp_path, face_png, speech_wav):
    engine.send(job_message("two", face_png, speech_wav, tmp_path / "o.mp4", audio2_path=str(speech_wav)))
    assert engine.next_event("error", where=lambda e: e["job_id"] == "two")["code"] == "bad_params"


def test_a_job_with_segments_dir_writes_and_announces_one_live_segment_per_clip(
    engine, tmp_path, face_png, nine_second_wav
):
    live = tmp_path / "live"
    engine.send({**job_message("live", face_png, nine_second_wav, tmp_path / "out.mp4"), "segments_dir": str(live)})
    events = engine.job_events("live")
    done = assert_good_job(events)
    segments = [event for event in events if event["type"] == "segment"]  # each one valid protocol
    clips = math.ceil(done["frames"] / CLIP_FRAMES)
    assert [segment["clip"] for segment in segments] == list(range(1, clips + 1))
    assert {segment["clips"] for segment in segments} == {clips}
    assert clips == 3 and sum(segment["duration_seconds"] for segment in segments) == pytest.approx(
        done["duration_seconds"]
    )
    files = [segment["file"] for segment in segments]
    assert sorted(path.name for path in live.iterdir()) == sorted([*files, "init.mp4", "live.m3u8"])  # no .part
    assert (live / "live.m3u8").read_text().endswith("#EXT-X-ENDLIST\n")


def test_heartbeat_is_answered_while_a_job_runs(engine, tmp_path, face_png, long_wav):
    # One write: the input thread starts the job before it reads the heartbeat, whatever the machine's speed.
    engine.send_all(job_message("hb", face_png, long_wav, tmp_path / "out.mp4"), {"type": "heartbeat", "seq": 7})
    reply = engine.next_event("heartbeat")
    assert reply == {"type": "heartbeat", "seq": 7, "active_jobs": ["hb"]}
    engine.send({"type": "cancel", "job_id": "hb"})
    assert engine.job_events("hb")[-1]["code"] == "cancelled"


def test_cancel_mid_job_stops_within_2_seconds_and_leaves_no_output(engine, tmp_path, face_png, long_wav):
    output = tmp_path / "out.mp4"
    engine.send(job_message("cx", face_png, long_wav, output))
    engine.next_event("progress", where=lambda e: e["job_id"] == "cx" and e.get("clip") == 1)
    assert (tmp_path / "out.mp4.part").exists()  # it really was writing
    engine.send({"type": "cancel", "job_id": "cx"})
    cancelled_at = time.monotonic()
    error = engine.job_events("cx")[-1]
    assert time.monotonic() - cancelled_at < 2.0
    assert (error["type"], error["code"], error["retryable"]) == ("error", "cancelled", False)
    assert list(tmp_path.iterdir()) == []


# MARK: - processes of their own


def test_shutdown_says_bye_and_exits_0(face_png):
    process = EngineProcess("--engine", "preview")
    try:
        assert process.shutdown() == 0
    finally:
        process.close()


def test_jobs_beyond_max_jobs_are_busy(tmp_path, face_png, long_wav, speech_wav):
    process = EngineProcess("--engine", "preview", "--max-jobs", "1")
    try:
        assert process.hello["capabilities"]["max_concurrent_jobs"] == 1
        # One write: the first job is running when the second is read, whatever the machine's speed.
        process.send_all(
            job_message("first", face_png, long_wav, tmp_path / "1.mp4"),
            job_message("second", face_png, speech_wav, tmp_path / "2.mp4"),
        )
        busy = process.next_event("error", where=lambda e: e["job_id"] == "second")
        assert (busy["code"], busy["retryable"]) == ("busy", True)
        process.send({"type": "shutdown"})  # cancels the running job, then bye
        assert process.job_events("first")[-1]["code"] == "cancelled"
        process.next_event("bye")
        assert process.process.wait(30) == 0
        assert list(tmp_path.iterdir()) == []
    finally:
        process.close()


def run_to_exit(*args: str, timeout: float = 180) -> tuple[int, list[dict]]:
    """Start the engine with stdin closed; its exit status and every line it printed (all must be JSON)."""
    result = subprocess.run(
        [sys.executable, "-m", "infinitetalk_engine", *args],
        cwd=REPO / "engine",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    return result.returncode, [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_infinitetalk_without_weights_fails_with_load_failed(tmp_path):
    status, events = run_to_exit("--engine", "infinitetalk", "--weights", str(tmp_path / "no-weights"))
    assert status != 0
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "load_failed" and errors[0]["job_id"] is None
    assert "ready" not in [e["type"] for e in events]


def test_bad_command_line_options_exit_with_usage():
    result = subprocess.run(
        [sys.executable, "-m", "infinitetalk_engine", "--max-jobs", "0"],
        cwd=REPO / "engine",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2 and b"max-jobs" in result.stderr and result.stdout == b""


def test_stray_prints_and_native_writes_to_stdout_go_to_stderr():
    script = (
        "import os, sys\n"
        "from infinitetalk_engine.__main__ import take_over_stdout\n"
        "protocol = take_over_stdout()\n"
        "print('a stray print')\n"
        "os.write(1, b'a native library writing to fd 1\\n')\n"
        'protocol.write(\'{"type": "bye"}\\n\')\n'
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.stdout == b'{"type": "bye"}\n'
    assert b"a stray print" in result.stderr and b"native library" in result.stderr
