"""The job parameters an engine takes: declared once, as a list of `ParameterSpec`, sent in `hello`.

`capabilities()["parameters"]` is the one source of what a job's `params` may hold (docs/engine-protocol.md,
"Job parameters"): the service validates uploads against it, `GET /api/config` shows it to the page, and the worker
checks every `job` against it (`check_params`). The older capability keys (`resolutions`, `default_steps`,
`max_steps`, `two_speakers`) are derived from the same list (`parameter_capabilities`), never written by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TYPES = ("string", "integer", "number", "boxes", "path", "loras")
MAX_LORAS = 3  # library LoRAs per job
MAX_LORA_SCALE = 2.0
DEFAULT_PROMPT = "A person is talking."
MAX_SEED = 2_147_483_647
MAX_LENGTH = 2000  # characters of a prompt


@dataclass(frozen=True)
class ParameterSpec:
    """One key of a job's `params`.

    `default` is the value used when the job leaves the key out or null; `None` means the engine decides (it may
    depend on other parameters, e.g. `shift` on the resolution). `requires` names another parameter that must be
    set for this one to be used. A `path` is a file the service provides (from an upload named without `_path`);
    `boxes` is a list of `count` `[x_min, y_min, x_max, y_max]` boxes in image pixels, with min < max. `loras` is a
    list of at most `count` `{"name", "scale"}` objects: a name among `choices`, a scale within minimum...maximum.
    """

    name: str
    type: str
    description: str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    count: int | None = None
    requires: str | None = None

    def __post_init__(self):
        assert self.type in TYPES, f"{self.name}: unknown type {self.type!r}; expected one of {TYPES}"
        if self.default is not None:
            assert self.problem(self.default) is None, f"{self.name}: default {self.default!r} is out of range"

    def to_json(self) -> dict[str, Any]:
        """The spec as `hello` sends it: `name`, `type`, `description`, `default`, then the limits that apply."""
        body: dict[str, Any] = {"name": self.name, "type": self.type, "description": self.description}
        body["default"] = self.default
        for key in ("choices", "minimum", "maximum", "max_length", "count", "requires"):
            value = getattr(self, key)
            if value is not None:
                body[key] = list(value) if key == "choices" else value
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ParameterSpec:
        choices = body.get("choices")
        return cls(
            name=body["name"],
            type=body["type"],
            description=body.get("description", ""),
            default=body.get("default"),
            choices=None if choices is None else tuple(choices),
            minimum=body.get("minimum"),
            maximum=body.get("maximum"),
            max_length=body.get("max_length"),
            count=body.get("count"),
            requires=body.get("requires"),
        )

    def problem(self, value: Any) -> str | None:
        """Why `value` (not null) is not acceptable, as words after the parameter's name; `None` if it is."""
        if self.type in ("string", "path"):
            if not isinstance(value, str):
                return "must be a string"
            if self.max_length is not None and len(value) > self.max_length:
                return f"must be at most {self.max_length} characters"
        elif self.type == "integer":
            if not _is_int(value):
                return "must be an integer"
        elif self.type == "number":
            if not _is_number(value):
                return "must be a number"
        elif self.type == "boxes":
            if not isinstance(value, list) or not all(_is_box(box) for box in value):
                return "must be a list of [x_min, y_min, x_max, y_max] boxes with 0 <= min < max"
            if self.count is not None and len(value) != self.count:
                return f"must have {self.count} boxes"
        elif self.type == "loras":
            return self._loras_problem(value)
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(str(c) for c in self.choices)}"
        if self.type in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {_format(self.minimum)}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {_format(self.maximum)}"
        return None

    def _loras_problem(self, value: Any) -> str | None:
        if not isinstance(value, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) for e in value
        ):
            return 'must be a list of {"name", "scale"} objects'
        if self.count is not None and len(value) > self.count:
            return f"must have at most {self.count} LoRAs"
        for entry in value:
            if self.choices is not None and entry["name"] not in self.choices:
                return f"names a LoRA that is not in the library ({entry['name']})"
            scale = entry.get("scale", 1.0)
            if not _is_number(scale) or not (self.minimum or 0) <= scale <= (self.maximum or MAX_LORA_SCALE):
                return f"has a scale outside {_format(self.minimum or 0)}...{_format(self.maximum or MAX_LORA_SCALE)}"
        return None


def loras_parameter(names: tuple[str, ...]) -> ParameterSpec:
    """The `loras` parameter of an engine with a LoRA library of `names`."""
    return ParameterSpec(
        "loras",
        "loras",
        "Style or identity LoRAs from the server's library, each with a scale.",
        choices=names,
        minimum=0,
        maximum=MAX_LORA_SCALE,
        count=MAX_LORAS,
    )


def standard_parameters(
    *,
    resolutions: tuple[str, ...],
    default_steps: int,
    max_steps: int,
    two_speakers: bool,
    lora_scale: bool = False,
    audio_guidance_steps: bool = False,
) -> list[ParameterSpec]:
    """The parameters of the InfiniteTalk model family, in the order a form shows them.

    Engines pick what differs (resolutions, step defaults, the two-speaker adapter, a LoRA); the ranges are the
    ones the public API has always had (docs/api.md).
    """
    specs = [
        ParameterSpec(
            "resolution", "string", "Output size bucket.", default=resolutions[0], choices=tuple(resolutions)
        ),
        ParameterSpec(
            "steps", "integer", "Denoising steps per clip.", default=default_steps, minimum=1, maximum=max_steps
        ),
        ParameterSpec(
            "seed", "integer", "Random seed; the same seed gives the same video.", minimum=0, maximum=MAX_SEED
        ),
        ParameterSpec("prompt", "string", "What the video shows.", default=DEFAULT_PROMPT, max_length=MAX_LENGTH),
        ParameterSpec("negative_prompt", "string", "What the video avoids.", max_length=MAX_LENGTH),
        ParameterSpec("shift", "number", "Noise schedule shift (default: by resolution).", minimum=0.5, maximum=20),
        ParameterSpec("text_guidance_scale", "number", "How closely to follow the prompt.", minimum=0, maximum=20),
        ParameterSpec("audio_guidance_scale", "number", "How closely to follow the audio.", minimum=0, maximum=20),
    ]
    if audio_guidance_steps:
        specs.append(
            ParameterSpec(
                "audio_guidance_steps",
                "integer",
                "Apply audio guidance on the first N steps only: each later step needs one model pass fewer "
                "(faster; default: every step, as upstream).",
                minimum=0,
                maximum=max_steps,
            )
        )
    if lora_scale:
        specs.append(ParameterSpec("lora_scale", "number", "LoRA strength (re-merged, slow).", minimum=0, maximum=4))
    specs.append(ParameterSpec("color_correction", "number", "Colour drift correction strength.", minimum=0, maximum=1))
    if two_speakers:
        specs.append(ParameterSpec("audio2_path", "path", "The second speaker's audio."))
    # Declared by every engine (a job may carry it as null); usable only with audio2_path.
    specs.append(
        ParameterSpec(
            "speaker_boxes",
            "boxes",
            "Where each speaker is in the image, in image pixels (default: the left and right halves).",
            count=2,
            requires="audio2_path",
        )
    )
    return specs


def parameter_capabilities(specs: list[ParameterSpec]) -> dict[str, Any]:
    """The `hello` capabilities that describe job parameters: `parameters`, and the older keys derived from it."""
    by_name = {spec.name: spec for spec in specs}
    capabilities: dict[str, Any] = {"parameters": [spec.to_json() for spec in specs]}
    if "resolution" in by_name:
        capabilities["resolutions"] = list(by_name["resolution"].choices or ())
    if "steps" in by_name:
        capabilities["default_steps"] = by_name["steps"].default
        capabilities["max_steps"] = int(by_name["steps"].maximum)
    capabilities["two_speakers"] = "audio2_path" in by_name
    return capabilities


def check_params(values: dict[str, Any], specs: list[ParameterSpec], engine: str) -> str | None:
    """Why a job's `params` are not acceptable to this engine (a message naming the field), or `None`.

    Null means the default. A key the engine does not declare may only be null (unknown keys are ignored by the
    protocol, but a known key with a value the engine cannot honour is refused).
    """
    by_name = {spec.name: spec for spec in specs}
    for name, value in values.items():
        if value is None:
            continue
        spec = by_name.get(name)
        if spec is None:
            return f"params.{name}: the {engine} engine does not take {name}"
        problem = spec.problem(value)
        if problem is not None:
            return f"params.{name} {problem}, got {value!r}"
        if spec.requires is not None and values.get(spec.requires) is None:
            return f"params.{name} needs params.{spec.requires}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_box(box: Any) -> bool:
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(_is_number(v) and v >= 0 for v in box)
        and box[0] < box[2]
        and box[1] < box[3]
    )


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
