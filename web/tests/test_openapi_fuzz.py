"""The service against its own OpenAPI document, with schemathesis: every operation, generated requests valid
and invalid, no 5xx, every answer as documented (status, content type, headers, body schema).

Bounded and deterministic: a fixed number of examples per operation and generation mode, derandomized, so every
run sends the same requests, and the verdict never depends on the machine's speed (no deadline). Runs on services
of its own, so its requests cannot disturb the browser tests' queue: one with auth off, one with auth on (called
with a key, and without one, where every protected operation must answer its documented 401).
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.failures import FailureGroup

EXAMPLES = 50  # per operation and generation mode

# Where a schema-valid request is still refused, for reasons no OpenAPI document can state: an upload whose bytes
# are not a picture or speech (415, 422), a LoRA upload to the preview engine, which applies none (422
# lora_unsupported, documented), and a plain GET of the WebSocket, which an HTTP client cannot upgrade (426,
# documented).
REFUSED_BEYOND_THE_SCHEMA = {
    "POST /api/generate": [positive_data_acceptance],
    "POST /api/batches": [positive_data_acceptance],
    "POST /api/loras": [positive_data_acceptance],
    "GET /ws": [positive_data_acceptance],
}


@pytest.fixture(scope="module")
def api_schema(own_server):
    return schemathesis.openapi.from_url(own_server.url + "openapi.json")


@pytest.fixture(scope="module")
def auth_schema(auth_server):
    return schemathesis.openapi.from_url(auth_server.url + "openapi.json")


@pytest.fixture(scope="module")
def key(auth_server) -> str:
    return json.loads(auth_server.keys("create", "--name", "fuzz", "--admin", "--rate", "off", "--json"))["key"]


def failure_of(operation, mode, headers: dict[str, str] | None = None, examples: int = EXAMPLES) -> str | None:
    """What schemathesis found wrong with `operation` in `mode`, or None."""
    excluded = REFUSED_BEYOND_THE_SCHEMA.get(operation.label, [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case):
        case.call_and_validate(excluded_checks=excluded, timeout=60, headers=headers)

    try:
        answers_as_documented()
    except Unsatisfiable:
        return None  # an operation without parameters or body has no invalid request to make
    except (Exception, FailureGroup) as failure:  # every failure is reported, one run shows all operations at fault
        return f"{operation.label}: {failure}"
    return None


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda mode: mode.value)
def test_every_operation_answers_as_documented(api_schema, mode):
    failures = [failure_of(result.ok(), mode) for result in api_schema.get_all_operations()]
    assert not any(failures), "\n\n".join(filter(None, failures))


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda mode: mode.value)
def test_with_auth_on_every_operation_answers_as_documented_with_a_key(auth_schema, key, mode):
    headers = {"Authorization": f"Bearer {key}"}
    failures = [failure_of(result.ok(), mode, headers) for result in auth_schema.get_all_operations()]
    assert not any(failures), "\n\n".join(filter(None, failures))


def test_with_auth_on_and_no_key_every_operation_answers_as_documented(auth_schema):
    # Fewer examples: without a key almost every answer is the same 401.
    mode = schemathesis.GenerationMode.POSITIVE
    failures = [failure_of(result.ok(), mode, examples=10) for result in auth_schema.get_all_operations()]
    assert not any(failures), "\n\n".join(filter(None, failures))
