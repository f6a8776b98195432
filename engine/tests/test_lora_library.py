"""Library LoRAs: both key styles read alike, a LoRA for another model is refused with the reason, and a LoRA job
leaves the model as it was (the next plain job is bit-identical to the one before), on tiny weights."""

import av
import numpy as np
import pytest
import torch
from in_process_engine import run_tiny_job, tiny_engine
from safetensors.torch import save_file

from infinitetalk_engine.infinitetalk.loading import WeightsError
from infinitetalk_engine.infinitetalk.lora_library import RuntimeLoras, read_library_lora, resolve


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory.mktemp("weights"))


def low_rank(layer, rank: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(rank, layer.in_features, generator=g) * 0.5,
        torch.randn(layer.out_features, rank, generator=g) * 0.5,
    )


def write_both_styles(folder, dit):
    """The same updates on every self-attention query of the DiT, as a Kijai file and as a PEFT file."""
    kijai, peft = {}, {}
    for index, block in enumerate(dit.blocks):
        down, up = low_rank(block.attn1.to_q, seed=index)
        kijai[f"diffusion_model.blocks.{index}.self_attn.q.lora_down.weight"] = down
        kijai[f"diffusion_model.blocks.{index}.self_attn.q.lora_up.weight"] = up
        peft[f"transformer.blocks.{index}.attn1.to_q.lora_A.weight"] = down
        peft[f"transformer.blocks.{index}.attn1.to_q.lora_B.weight"] = up
    save_file(kijai, folder / "style-kijai.safetensors")
    save_file(peft, folder / "style-peft.safetensors")
    return read_library_lora(folder / "style-kijai.safetensors"), read_library_lora(folder / "style-peft.safetensors")


def frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_both_key_styles_name_the_same_layers_and_updates(engine, tmp_path):
    kijai, peft = write_both_styles(tmp_path, engine.models.dit)
    assert (kijai.style, peft.style) == ("kijai", "peft") and kijai.rank == peft.rank == 2
    ours, problems = resolve(kijai, engine.models.dit)
    theirs, other_problems = resolve(peft, engine.models.dit)
    assert problems == other_problems == []
    assert ours.keys() == theirs.keys() == {f"blocks.{i}.attn1.to_q" for i in range(len(engine.models.dit.blocks))}
    assert all(torch.equal(ours[k].up @ ours[k].down, theirs[k].up @ theirs[k].down) for k in ours)


def test_a_layer_gets_exactly_its_low_rank_update(engine, tmp_path):
    kijai, _ = write_both_styles(tmp_path, engine.models.dit)
    layer = engine.models.dit.blocks[0].attn1.to_q
    x = torch.randn(3, layer.in_features, dtype=layer.weight.dtype)
    plain = layer(x)
    with RuntimeLoras(engine.models.dit, [(kijai, 0.7)]):
        with_lora = layer(x)
    update = kijai.updates["blocks.0.self_attn.q"]
    expected = plain.float() + (x.float() @ update.down.T) @ update.up.T * 0.7
    assert torch.allclose(with_lora.float(), expected, atol=1e-5)
    assert torch.equal(layer(x), plain), "the hook is gone after the job"


def test_a_plain_job_after_a_lora_job_is_bit_identical_to_one_before(engine, tmp_path):
    kijai, _ = write_both_styles(tmp_path, engine.models.dit)
    before = frames(run_tiny_job(engine, tmp_path, seed=3).output_path)
    with RuntimeLoras(engine.models.dit, [(kijai, 1.5)]):
        styled = frames(run_tiny_job(engine, tmp_path, seed=3).output_path)
    after = frames(run_tiny_job(engine, tmp_path, seed=3).output_path)
    assert np.array_equal(before, after)
    assert not np.array_equal(before, styled), "the LoRA changed the video"


def test_a_lora_for_another_model_is_refused_with_the_reason(engine, tmp_path):
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 1536),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(1536, 4),
            "diffusion_model.blocks.99.self_attn.q.lora_down.weight": torch.zeros(4, 8),
            "diffusion_model.blocks.99.self_attn.q.lora_up.weight": torch.zeros(8, 4),
        },
        tmp_path / "big.safetensors",
    )
    lora = read_library_lora(tmp_path / "big.safetensors")
    _, problems = resolve(lora, engine.models.dit)
    assert any("other shapes" in p and "1536x1536" in p for p in problems), problems
    assert any("no layer" in p and "blocks.99" in p for p in problems), problems
    with pytest.raises(WeightsError, match="does not fit"), RuntimeLoras(engine.models.dit, [(lora, 1.0)]):
        pass


def test_a_file_without_lora_weights_is_refused(tmp_path):
    save_file({"something.else": torch.zeros(2)}, tmp_path / "empty.safetensors")
    with pytest.raises(WeightsError, match="no LoRA weights"):
        read_library_lora(tmp_path / "empty.safetensors")


def test_the_engine_lists_its_library_in_hello_and_applies_a_jobs_loras(tmp_path):
    from in_process_engine import TINY_JOB_OPTIONS
    from tiny_weights import write_tiny_weights

    from infinitetalk_engine.contract import EngineError, EngineOptions
    from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine

    weights = write_tiny_weights(tmp_path / "weights")
    library = weights / "loras"
    library.mkdir()
    probe = tiny_engine(tmp_path / "probe")
    write_both_styles(library, probe.models.dit)
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 1536),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(1536, 4),
        },
        library / "for-another-model.safetensors",
    )
    engine = InfiniteTalkEngine(EngineOptions(weights=str(weights), device="cpu", extra=TINY_JOB_OPTIONS))
    listed = {lora["name"]: lora for lora in engine.capabilities()["loras"]}
    assert listed["style-kijai"]["fits"] and listed["style-peft"]["fits"]
    assert listed["style-kijai"]["modules"] == ["self_attn.q"] and listed["style-peft"]["rank"] == 2
    assert not listed["for-another-model"]["fits"] and "other shapes" in listed["for-another-model"]["reason"]
    spec = next(p for p in engine.capabilities()["parameters"] if p["name"] == "loras")
    assert set(spec["choices"]) == set(listed) and spec["count"] == 3
    engine.load()
    plain = frames(run_tiny_job(engine, tmp_path, seed=3).output_path)
    styled = frames(run_tiny_job(engine, tmp_path, seed=3, loras=[{"name": "style-peft", "scale": 1.5}]).output_path)
    assert not np.array_equal(plain, styled)
    assert np.array_equal(plain, frames(run_tiny_job(engine, tmp_path, seed=3).output_path))
    with pytest.raises(EngineError) as refused:
        run_tiny_job(engine, tmp_path, loras=[{"name": "for-another-model", "scale": 1.0}])
    assert refused.value.code == "invalid_lora" and "other shapes" in str(refused.value)


def test_an_added_lora_is_checked_against_the_model_then_copied_into_the_library(tmp_path):
    from in_process_engine import TINY_JOB_OPTIONS
    from tiny_weights import write_tiny_weights

    from infinitetalk_engine.contract import EngineError, EngineOptions
    from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine

    engine = InfiniteTalkEngine(
        EngineOptions(weights=str(write_tiny_weights(tmp_path / "weights")), device="cpu", extra=TINY_JOB_OPTIONS)
    )
    engine.load()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    write_both_styles(uploads, engine.models.dit)
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 1536),
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(1536, 4),
        },
        uploads / "big.safetensors",
    )
    (uploads / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert engine.capabilities()["loras"] == []

    added = engine.add_lora("my-style", str(uploads / "style-peft.safetensors"))
    assert added["name"] == "my-style" and added["fits"] and added["rank"] == 2 and added["style"] == "peft"
    library = tmp_path / "weights" / "loras"
    assert [p.name for p in library.iterdir()] == ["my-style.safetensors"], "no partial file is left behind"
    assert [lora["name"] for lora in engine.capabilities()["loras"]] == ["my-style"]
    spec = next(p for p in engine.capabilities()["parameters"] if p["name"] == "loras")
    assert spec["choices"] == ["my-style"]
    styled = run_tiny_job(engine, tmp_path, seed=3, loras=[{"name": "my-style", "scale": 1.0}])
    assert styled.frames > 0

    def refusal(name, file):
        with pytest.raises(EngineError) as refused:
            engine.add_lora(name, str(uploads / file))
        return refused.value.code, refused.value.message

    assert refusal("my-style", "style-kijai.safetensors")[0] == "lora_exists"
    code, message = refusal("big", "big.safetensors")
    assert code == "invalid_lora" and "1 of 1 targets have other shapes" in message
    code, message = refusal("junk", "junk.safetensors")
    assert code == "invalid_lora" and "uploads" not in message
    assert refusal("../escape", "style-kijai.safetensors")[0] == "invalid_lora"
    assert [p.name for p in library.iterdir()] == ["my-style.safetensors"], "refused files are not kept"


def test_a_library_file_added_by_hand_is_listed_after_a_rescan(engine, tmp_path):
    folder = engine.lora_dir
    try:
        engine.lora_dir = tmp_path
        engine.rescan_loras()
        assert engine.capabilities()["loras"] == []
        write_both_styles(tmp_path, engine.models.dit)
        engine.rescan_loras()
        assert [lora["name"] for lora in engine.capabilities()["loras"]] == ["style-kijai", "style-peft"]
    finally:
        engine.lora_dir = folder
        engine.rescan_loras()
