"""Memory profiles: `auto` picks the first of resident, fp8, offload whose planned peak fits the GPU's free memory
(offload also needs its pinned host memory); an fp8 engine stores the DiT's block linears as float8, keeps umT5 in
host memory, says so in hello, and makes videos."""

import pytest
import torch
from in_process_engine import TINY_JOB_OPTIONS, run_tiny_job
from tiny_weights import write_tiny_weights

from infinitetalk_engine.contract import EngineError, EngineOptions
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.infinitetalk.memory_plan import GIB, ModelSizes, plan
from infinitetalk_engine.infinitetalk.memory_profiles import choose_profile
from infinitetalk_engine.infinitetalk.models.fp8_linear import Fp8Linear


@pytest.fixture(scope="module")
def full_size():
    return ModelSizes.full_size()


def need(sizes, profile) -> float:
    return plan(sizes, profile, "480p").peak_vram


def test_auto_takes_resident_when_it_fits(full_size):
    choice = choose_profile("auto", "cuda", 139 * GIB, 141 * GIB, full_size)
    assert choice.profile == "resident" and "fits" in choice.reason


def test_auto_takes_fp8_on_a_card_too_small_for_resident(full_size):
    free = int((need(full_size, "resident") + need(full_size, "fp8")) / 2)  # between the two
    assert choose_profile("auto", "cuda", free, 48 * GIB, full_size).profile == "fp8"


def test_auto_takes_offload_on_a_24_gb_card_when_the_host_has_the_memory(full_size):
    host = 64 * GIB
    choice = choose_profile("auto", "cuda", 22 * GIB, 24 * GIB, full_size, host_available_bytes=host)
    assert choice.profile == "offload"
    pinned = plan(full_size, "offload", "480p").pinned_host
    with pytest.raises(ValueError, match=r"pinned host memory, and this machine has 16\.0 GiB available"):
        choose_profile("auto", "cuda", 22 * GIB, 24 * GIB, full_size, host_available_bytes=16 * GIB)
    assert pinned > 16 * GIB


def test_auto_on_a_card_too_small_for_offload_says_what_it_needs(full_size):
    with pytest.raises(ValueError, match=r"the smallest profile, offload, plans .* GiB at 480p"):
        choose_profile("auto", "cuda", 4 * GIB, 8 * GIB, full_size)


def test_a_profile_asked_for_is_taken_and_an_unknown_one_refused(full_size):
    assert choose_profile("fp8", "cuda", 1 * GIB, 24 * GIB, full_size).profile == "fp8"
    assert choose_profile("offload", "cuda", 20 * GIB, 24 * GIB, full_size).profile == "offload"
    assert choose_profile("auto", "cpu", None, None, None).profile == "resident"
    with pytest.raises(ValueError, match="pinned host memory"):
        choose_profile("offload", "cuda", 20 * GIB, 24 * GIB, full_size, host_available_bytes=GIB)
    with pytest.raises(ValueError, match="unknown memory_profile"):
        choose_profile("tiny", "cuda", 139 * GIB, 141 * GIB, full_size)


def test_an_fp8_engine_quantises_the_dit_keeps_umt5_on_the_host_and_makes_videos(tmp_path):
    folder = write_tiny_weights(tmp_path / "weights")
    options = {**TINY_JOB_OPTIONS, "memory_profile": "fp8"}
    engine = InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra=options))
    assert engine.capabilities()["memory_profile"] == "fp8"
    engine.load()
    fp8_layers = [m for m in engine.models.dit.blocks.modules() if isinstance(m, Fp8Linear)]
    assert fp8_layers and all(m.weight.dtype == torch.float8_e4m3fn for m in fp8_layers)
    assert engine.models.t5.shared.weight.device.type == "cpu"
    result = run_tiny_job(engine, tmp_path)
    assert result.frames > 0


def test_a_resident_engine_says_so_and_an_unknown_profile_is_a_load_failure(tmp_path):
    folder = write_tiny_weights(tmp_path / "weights")
    engine = InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra=TINY_JOB_OPTIONS))
    assert engine.capabilities()["memory_profile"] == "resident"
    with pytest.raises(EngineError, match="memory_profile"):
        InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra={"memory_profile": "huge"}))


def test_an_fp8_engine_stores_umt5_in_float8_and_encodes_prompts_close_to_resident(tmp_path):
    folder = write_tiny_weights(tmp_path / "weights")

    def engine(profile):
        made = InfiniteTalkEngine(
            EngineOptions(weights=str(folder), device="cpu", extra={**TINY_JOB_OPTIONS, "memory_profile": profile})
        )
        made.load()
        return made

    fp8, resident = engine("fp8"), engine("resident")
    layers = [(name, m) for name, m in fp8.models.t5.encoder.named_modules() if isinstance(m, Fp8Linear)]
    assert layers and not any(name.endswith(".wo") for name, _ in layers), "the feed-forward outputs stay"
    ours, theirs = fp8._encode_text("A person is talking."), resident._encode_text("A person is talking.")
    # e4m3 keeps 3 mantissa bits per weight (per-row scales): a few percent of the context's scale.
    relative = ((ours.float() - theirs.float()).norm() / theirs.float().norm()).item()
    assert ours.shape == theirs.shape and relative < 0.05, relative
