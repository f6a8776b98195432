"""protocol.py: inbound parsing and outbound events, checked against docs/engine-protocol.schema.json."""

import io
import json
import threading

import pytest
from engine_process import validate

from infinitetalk_engine.contract import JobResult
from infinitetalk_engine.protocol import (
    AddLoraMessage,
    BadMessage,
    Bye,
    CancelMessage,
    Done,
    Error,
    HeartbeatMessage,
    HeartbeatReply,
    Hello,
    JobMessage,
    MessageWriter,
    Progress,
    Ready,
    RescanMessage,
    Segment,
    ShutdownMessage,
    Stage,
    parse_message,
)

JOB = {
    "type": "job",
    "job_id": "4f1c",
    "image_path": "/in/image",
    "audio_path": "/in/audio",
    "output_path": "/out/4f1c.mp4",
    "params": {
        "resolution": "720p",
        "steps": 8,
        "seed": 7,
        "prompt": "A person is talking.",
        "negative_prompt": "",
        "shift": None,
        "text_guidance_scale": 1.0,
        "audio_guidance_scale": None,
        "lora_scale": None,
        "color_correction": 0.5,
        "audio2_path": None,
        "speaker_boxes": None,
    },
}


# MARK: - service -> engine


def test_a_job_message_becomes_a_job_request():
    validate(JOB, "job")
    message = parse_message(json.dumps(JOB))
    assert isinstance(message, JobMessage)
    request = message.request
    assert (request.job_id, request.image_path, request.audio_path, request.output_path) == (
        "4f1c",
        "/in/image",
        "/in/audio",
        "/out/4f1c.mp4",
    )
    assert (request.params.resolution, request.params.steps, request.params.seed) == ("720p", 8, 7)
    assert request.params.shift is None and request.params.color_correction == 0.5


def test_segments_dir_is_optional():
    assert parse_message(json.dumps(JOB)).request.segments_dir is None
    live = {**JOB, "segments_dir": "/data/live/4f1c"}
    validate(live, "job")
    assert parse_message(json.dumps(live)).request.segments_dir == "/data/live/4f1c"
    with pytest.raises(BadMessage):
        parse_message(json.dumps({**JOB, "segments_dir": 3}))


def test_null_or_absent_params_keep_the_defaults_and_unknown_keys_are_ignored():
    minimal = {k: v for k, v in JOB.items() if k != "params"}
    request = parse_message(json.dumps({**minimal, "future_key": 1, "params": {"resolution": None, "new": 2}})).request
    assert request.params.resolution == "480p" and request.params.seed is None


def test_cancel_heartbeat_and_shutdown_parse():
    assert parse_message('{"type":"cancel","job_id":"a"}') == CancelMessage("a")
    assert parse_message(b'{"type":"heartbeat","seq":17}') == HeartbeatMessage(17)
    assert parse_message('{"type":"shutdown"}') == ShutdownMessage()


def test_library_messages_parse():
    line = '{"type":"add_lora","request_id":"r1","name":"anime","path":"/tmp/upload"}'
    assert parse_message(line) == AddLoraMessage("r1", "anime", "/tmp/upload")
    assert parse_message('{"type":"rescan"}') == RescanMessage()
    with pytest.raises(BadMessage, match="path"):
        parse_message('{"type":"add_lora","request_id":"r1","name":"anime"}')


@pytest.mark.parametrize(
    "line, job_id",
    [
        ("not json", None),
        ("[1, 2]", None),
        (b"\xff\xfe", None),
        ('{"job_id": "a"}', "a"),
        ('{"type": "dance", "job_id": "b"}', "b"),
        ('{"type": "job", "job_id": "c", "image_path": "/i", "audio_path": "/a"}', "c"),
        ('{"type": "job", "image_path": "/i", "audio_path": "/a", "output_path": "/o"}', None),
        ('{"type": "cancel"}', None),
        ('{"type": "heartbeat", "seq": "17"}', None),
        ('{"type": "heartbeat", "seq": true}', None),
    ],
)
def test_malformed_messages_are_bad_message_with_the_job_id_if_readable(line, job_id):
    with pytest.raises(BadMessage) as error:
        parse_message(line)
    assert (error.value.code, error.value.job_id) == ("bad_message", job_id)


@pytest.mark.parametrize(
    "params",
    [
        {"resolution": 720},
        {"steps": 0},
        {"steps": 2.5},
        {"seed": -1},
        {"seed": True},
        {"prompt": 3},
        {"shift": "7"},
        {"shift": float("nan")},
        {"speaker_boxes": [[1, 2, 3]]},
        {"speaker_boxes": "all"},
    ],
)
def test_params_of_the_wrong_type_or_range_are_bad_params(params):
    with pytest.raises(BadMessage) as error:
        parse_message(json.dumps({**JOB, "params": params}))
    assert (error.value.code, error.value.job_id) == ("bad_params", "4f1c")


# MARK: - engine -> service

EVENTS = [
    Hello(
        "preview",
        "0.1.0",
        {"resolutions": ["480p", "720p"], "fps": 25, "max_concurrent_jobs": 2, "device": "cpu", "is_preview": True},
    ),
    Ready(0.41),
    Stage("4f1c", "decoding_audio", "Decoding audio"),
    Stage("4f1c", "generating", "Generating clip 2 of 3", clip=2, clips=3),
    Progress("4f1c", 0.58),
    Progress("4f1c", 0.58, step=3, steps=4, clip=2, clips=3, eta_seconds=41.2),
    Segment("4f1c", 2, 3, "clip-00002.m4s", "init.mp4", 4.0, 8.0),
    Segment("4f1c", 1, None, "clip-00001.m4s", "init.mp4", 3.24, 3.24),
    Done("4f1c", JobResult("/out/4f1c.mp4", 226, 9.04, 25, 640, 640, ["no face found"]), 3.9),
    Error("4f1c", "bad_audio", "audio could not be decoded", False),
    Error(None, "load_failed", "weights missing", False),
    HeartbeatReply(17, ["4f1c"]),
    Bye(),
]


@pytest.mark.parametrize("event", EVENTS, ids=[f"{e.type}-{i}" for i, e in enumerate(EVENTS)])
def test_every_event_is_valid_protocol(event):
    message = json.loads(event.to_json())
    kind = {"heartbeat": "heartbeat_reply"}.get(event.type, event.type)
    validate(message, kind)
    assert message["type"] == event.type


def test_unset_optional_keys_are_omitted_not_null():
    message = json.loads(Stage("a", "decoding_audio", "x").to_json())
    assert "clip" not in message and "clips" not in message
    assert json.loads(Progress("a", 0.5).to_json())["eta_seconds"] is None  # the schema allows a null ETA


def test_the_writer_emits_whole_flushed_lines_from_many_threads():
    stream = io.StringIO()
    writer = MessageWriter(stream)

    def send_many(seq: int) -> None:
        for _ in range(200):
            writer.send(HeartbeatReply(seq, ["x" * 100]))

    threads = [threading.Thread(target=send_many, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 800
    assert all(json.loads(line)["type"] == "heartbeat" for line in lines)


def test_a_closed_stream_does_not_raise():
    stream = io.StringIO()
    stream.close()
    MessageWriter(stream).send(Bye())
