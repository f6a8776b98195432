"""Several engines, one per GPU (`--gpus`), through the real binary with preview engines (which use no GPU): the
service shows each engine, runs as many jobs at once as they have slots together, and keeps serving when one engine
is killed, which restarts on its own."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

import pytest
from conftest import running_service

ENGINES = 2


@pytest.fixture(scope="module")
def pool_server(tmp_path_factory):
    yield from running_service(tmp_path_factory, "pool-service", ("--gpus", str(ENGINES)))


def engine_pids(server) -> list[int]:
    """The engine processes the service started (its children)."""
    output = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in output.split()]


def ready_lines(lines: list[str]) -> int:
    return sum("engine ready after" in line for line in lines)


def test_every_engine_is_shown_and_their_slots_add_up(pool_server):
    assert pool_server.log.wait_for(lambda lines: ready_lines(lines) >= ENGINES)
    config = pool_server.get_json("api/config")
    instances = config["engine"]["instances"]
    assert [i["gpu"] for i in instances] == [str(n) for n in range(ENGINES)]
    assert all(i["state"] == "ready" for i in instances)
    assert config["max_concurrent"] == sum(i["slots"] for i in instances)
    assert len(pool_server.get_json("readyz")["engine"]["instances"]) == ENGINES
    assert len(engine_pids(pool_server)) == ENGINES


def test_a_killed_engine_does_not_stop_the_others(pool_server, media):
    assert pool_server.log.wait_for(lambda lines: ready_lines(lines) >= ENGINES)
    before = ready_lines(pool_server.log.lines)
    os.kill(engine_pids(pool_server)[0], signal.SIGKILL)
    # Jobs still run (on the other engine, or on the first once it is back)
    status, answer = pool_server.post(
        "api/generate", files={"image": media / "astronaut.png", "audio": media / "speech-en.wav"}
    )
    assert status == 200, answer
    assert pool_server.wait_for_status(answer["request_id"], {"completed", "failed"})["status"] == "completed"
    # And the killed engine comes back by itself
    assert pool_server.log.wait_for(lambda lines: ready_lines(lines) > before)
    with urllib.request.urlopen(pool_server.url + "metrics", timeout=10) as metrics:
        text = metrics.read().decode()
    assert text.count("infinitetalk_engine_up{") == ENGINES
