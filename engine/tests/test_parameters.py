"""parameters.py: the job parameters an engine declares in `hello`, the capabilities derived from them, the checks."""

import json
from dataclasses import fields

import pytest
from engine_process import validate

from infinitetalk_engine.contract import EngineOptions, JobParams
from infinitetalk_engine.parameters import (
    ParameterSpec,
    check_params,
    parameter_capabilities,
    standard_parameters,
)
from infinitetalk_engine.preview.engine import PreviewEngine
from infinitetalk_engine.protocol import Hello

SINGLE = standard_parameters(resolutions=("480p", "720p"), default_steps=4, max_steps=50, two_speakers=False)
DOUBLE = standard_parameters(resolutions=("480p",), default_steps=40, max_steps=60, two_speakers=True, lora_scale=True)


def test_the_older_capability_keys_are_derived_from_the_parameters():
    capabilities = parameter_capabilities(DOUBLE)
    assert capabilities["resolutions"] == ["480p"]
    assert (capabilities["default_steps"], capabilities["max_steps"]) == (40, 60)
    assert capabilities["two_speakers"] is True
    assert parameter_capabilities(SINGLE)["two_speakers"] is False
    names = [spec["name"] for spec in capabilities["parameters"]]
    assert names[:4] == ["resolution", "steps", "seed", "prompt"], "the order is the form's order"
    assert "lora_scale" in names and "audio2_path" in names
    assert "lora_scale" not in [spec.name for spec in SINGLE]


def test_the_preview_hello_declares_its_parameters_and_matches_the_protocol_schema():
    capabilities = PreviewEngine(EngineOptions()).capabilities()
    validate(json.loads(Hello("preview", "0", capabilities).to_json()), "hello")
    specs = {spec["name"]: spec for spec in capabilities["parameters"]}
    assert specs["resolution"] == {
        "name": "resolution",
        "type": "string",
        "description": specs["resolution"]["description"],
        "default": "480p",
        "choices": ["480p", "720p"],
    }
    assert specs["steps"]["default"] == 4 and specs["steps"]["maximum"] == 50
    assert specs["seed"]["default"] is None and specs["seed"]["maximum"] == 2147483647
    assert specs["speaker_boxes"]["requires"] == "audio2_path" and "audio2_path" not in specs
    assert capabilities["resolutions"] == ["480p", "720p"] and capabilities["two_speakers"] is False


def test_specs_survive_the_trip_through_json():
    assert [ParameterSpec.from_json(spec.to_json()) for spec in DOUBLE] == DOUBLE


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"resolution": "720p", "steps": 50, "seed": 0, "prompt": "x" * 2000, "shift": 0.5, "color_correction": 1},
        {"resolution": None, "audio2_path": None, "speaker_boxes": None, "lora_scale": None},
    ],
)
def test_values_within_the_declared_ranges_pass(values):
    assert check_params(values, SINGLE, "preview") is None


@pytest.mark.parametrize(
    "values, message",
    [
        ({"resolution": "1080p"}, "params.resolution must be one of 480p, 720p, got '1080p'"),
        ({"steps": 0}, "params.steps must be at least 1"),
        ({"steps": 51}, "params.steps must be at most 50"),
        ({"steps": 2.5}, "params.steps must be an integer"),
        ({"seed": 2147483648}, "params.seed must be at most 2147483647"),
        ({"color_correction": 1.5}, "params.color_correction must be at most 1"),
        ({"text_guidance_scale": float("nan")}, "params.text_guidance_scale must be a number"),
        ({"negative_prompt": "x" * 2001}, "params.negative_prompt must be at most 2000 characters"),
        ({"lora_scale": 1.0}, "params.lora_scale: the preview engine does not take lora_scale"),
        ({"speaker_boxes": [[0, 0, 1, 1], [1, 0, 2, 1]]}, "params.speaker_boxes needs params.audio2_path"),
    ],
)
def test_values_outside_the_declared_parameters_are_refused_naming_the_field(values, message):
    assert check_params(values, SINGLE, "preview").startswith(message)


@pytest.mark.parametrize(
    "boxes, ok",
    [
        ([[0, 0, 10, 10], [10, 0, 20, 10]], True),
        ([[0, 0, 10, 10]], False),  # one box for two speakers
        ([[0, 0, 10, 10], [30, 0, 20, 10]], False),  # min > max
        ([[0, 0, 10], [10, 0, 20, 10]], False),
        ("left and right", False),
    ],
)
def test_speaker_boxes_are_two_ordered_boxes(boxes, ok):
    values = {"audio2_path": "/b.wav", "speaker_boxes": boxes}
    assert (check_params(values, DOUBLE, "infinitetalk") is None) == ok


def test_every_declared_parameter_reaches_the_engine():
    # The protocol parses `params` into JobParams (the engines' typed view): a declared name it lacks would be dropped.
    assert {spec.name for spec in DOUBLE} <= {f.name for f in fields(JobParams)}
