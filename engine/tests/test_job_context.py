"""job_context.py: progress stays monotonic and rate-limited; cancel raises JobCancelled."""

import json
import threading

import pytest
from engine_process import validate

from infinitetalk_engine.contract import JobCancelled
from infinitetalk_engine.job_context import ProtocolJobContext


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_context(clock=None):
    sent = []
    cancelled = threading.Event()
    ctx = ProtocolJobContext("job", sent.append, cancelled, min_interval=0.1, clock=clock or FakeClock())
    return ctx, sent, cancelled


def fractions(sent):
    return [e.fraction for e in sent if e.type == "progress"]


def test_progress_never_goes_backwards():
    clock = FakeClock()
    ctx, sent, _ = make_context(clock)
    for value in (0.2, 0.1, 0.5, 0.3, 1.5, 0.9):
        clock.now += 1
        ctx.progress(value)
    assert fractions(sent) == [0.2, 0.2, 0.5, 0.5, 1.0]  # clamped to [0, 1]; after 1.0 nothing more


def test_progress_is_rate_limited_but_the_final_one_always_goes_out():
    clock = FakeClock()
    ctx, sent, _ = make_context(clock)
    for i in range(1, 100):
        clock.now += 0.01  # 100 reports a second
        ctx.progress(i / 100)
    ctx.progress(1.0)
    assert 9 <= len(sent) <= 12  # ~one per 0.1 s over ~1 s, plus the final one
    assert fractions(sent)[-1] == 1.0


def test_eta_is_extrapolated_once_it_can_be_told():
    clock = FakeClock()
    ctx, sent, _ = make_context(clock)
    ctx.progress(0.01)
    clock.now += 10
    ctx.progress(0.25)
    assert sent[0].eta_seconds is None
    assert sent[1].eta_seconds == pytest.approx(30.0)
    clock.now += 1
    ctx.progress(0.5, eta_seconds=4.0)  # the engine's own estimate wins
    assert sent[2].eta_seconds == 4.0


def test_events_are_valid_protocol():
    ctx, sent, _ = make_context()
    ctx.stage("generating", "Generating clip 1 of 2", clip=1, clips=2)
    ctx.progress(0.3, step=1, steps=4, clip=1, clips=2)
    validate(json.loads(sent[0].to_json()), "stage")
    validate(json.loads(sent[1].to_json()), "progress")


def test_unknown_stage_is_a_programming_error():
    ctx, _, _ = make_context()
    with pytest.raises(ValueError):
        ctx.stage("thinking", "hmm")


def test_check_cancelled_raises_after_cancel():
    ctx, _, cancelled = make_context()
    ctx.check_cancelled()
    cancelled.set()
    with pytest.raises(JobCancelled):
        ctx.check_cancelled()
