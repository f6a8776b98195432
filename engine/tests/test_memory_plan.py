"""The memory plan: exact weight counts from the real configs, planned peaks per profile and resolution."""

import pytest
from tiny_weights import write_tiny_weights

from infinitetalk_engine.infinitetalk.memory_plan import GIB, PROFILES, RESOLUTIONS, ModelSizes, main, plan
from infinitetalk_engine.infinitetalk.model_set import ModelSetOptions, load_model_set
from infinitetalk_engine.infinitetalk.weights import WeightsLayout


@pytest.fixture(scope="module")
def full_size():
    return ModelSizes.full_size()


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_weights_of_a_folder_are_counted_exactly(tmp_path):
    # Given a weights folder (tiny) and the models loaded from it
    folder = write_tiny_weights(tmp_path)
    sizes = ModelSizes.from_weights(folder)
    models = load_model_set(WeightsLayout(folder), ModelSetOptions(device="cpu", use_lora=False))
    # Then the plan counts what the engine loads
    assert sizes.dit_block_linear + sizes.dit_block_other + sizes.dit_outside_blocks == params(models.dit)
    assert sizes.dit_block_linear + sizes.dit_block_other == params(models.dit.blocks)
    assert (sizes.t5, sizes.vae, sizes.wav2vec) == (
        params(models.t5),
        params(models.vae.model),
        params(models.audio.model),
    )


def test_full_size_counts_match_the_published_checkpoints(full_size):
    # Wan2.1-I2V-14B's DiT is 16.4B parameters (32.8 GB of bf16 shards); umT5-XXL's encoder 5.7B (11.4 GB bf16)
    dit_without_adapter = (
        full_size.dit_block_linear + full_size.dit_block_other + full_size.dit_outside_blocks - full_size.adapter
    )
    assert dit_without_adapter == pytest.approx(16.4e9, rel=0.01)
    assert full_size.t5 == pytest.approx(5.68e9, rel=0.01)


def test_each_profile_plans_less_than_the_one_before_and_meets_its_target(full_size):
    for resolution in RESOLUTIONS:
        peaks = [plan(full_size, profile, resolution).peak_vram for profile in PROFILES]
        assert peaks == sorted(peaks, reverse=True)
    assert plan(full_size, "fp8", "480p").peak_vram <= 30 * GIB
    assert plan(full_size, "offload", "480p").peak_vram <= 12 * GIB
    assert plan(full_size, "offload", "720p").peak_vram <= 20 * GIB


def test_only_offload_needs_pinned_host_memory_the_size_of_the_dit_blocks(full_size):
    offload = plan(full_size, "offload", "480p")
    blocks_bf16 = (full_size.dit_block_linear + full_size.dit_block_other) * 2
    assert offload.pinned_host == blocks_bf16, "every block keeps its host copy"
    assert plan(full_size, "resident", "480p").pinned_host == plan(full_size, "fp8", "480p").pinned_host == 0


def test_a_second_speaker_adds_the_second_adapter(full_size):
    one, two = plan(full_size, "resident", "480p"), plan(full_size, "resident", "480p", two_speakers=True)
    assert two.peak_vram - one.peak_vram == full_size.adapter * 2


def test_an_unknown_profile_is_refused(full_size):
    with pytest.raises(ValueError, match="unknown memory profile"):
        plan(full_size, "tiny", "480p")


def test_the_command_prints_every_profile_and_resolution_as_planned(capsys):
    main([])
    out = capsys.readouterr().out
    assert out.startswith("PLANNED")
    rows = [line.split()[:2] for line in out.splitlines()[2:-1]]
    assert rows == [[p, r] for p in PROFILES for r in RESOLUTIONS]
