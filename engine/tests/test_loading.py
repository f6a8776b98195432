"""Streaming loader: meta build, one-tensor-at-a-time fill, strict key accounting, clear errors naming the file."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from infinitetalk_engine.infinitetalk.loading import TensorFile, WeightsError, parameters_on_meta, stream_into
from infinitetalk_engine.infinitetalk.weights import WeightsLayout


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.register_buffer("table", torch.arange(5.0), persistent=False)  # computed, never in a file


def tiny_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "proj.weight": torch.randn(3, 4, generator=g),
        "proj.bias": torch.randn(3, generator=g),
        "norm.weight": torch.randn(3, generator=g),
        "norm.bias": torch.randn(3, generator=g),
    }


def build():
    with parameters_on_meta():
        return Tiny()


def load(model, *files, dtype=torch.float32, **stream):
    """`stream_into` the tiny model on the CPU, in float32 unless told."""
    return stream_into(model, list(files), name="tiny", device="cpu", dtype=dtype, **stream)


def test_meta_build_allocates_no_parameters_but_keeps_computed_buffers():
    model = build()
    assert all(p.device.type == "meta" for p in model.parameters())
    assert torch.equal(model.table, torch.arange(5.0))


def test_streams_every_tensor_casts_and_keeps_fp32_modules(tmp_path):
    state = tiny_state()
    save_file(state, tmp_path / "a.safetensors")
    model = build()
    report = load(model, tmp_path / "a.safetensors", dtype=torch.bfloat16, keep_fp32=lambda n: n.startswith("norm."))
    report.raise_if_incomplete([tmp_path / "a.safetensors"])
    assert report.loaded == 4 and not report.missing and not report.unexpected
    assert model.proj.weight.dtype == torch.bfloat16 and model.norm.weight.dtype == torch.float32
    assert torch.equal(model.norm.bias, state["norm.bias"])


def test_pth_files_load_through_mmap(tmp_path):
    state = tiny_state()
    torch.save(state, tmp_path / "a.pth")
    model = build()
    load(model, tmp_path / "a.pth")
    assert torch.equal(model.proj.weight, state["proj.weight"])


def test_later_files_override_earlier_ones_and_are_reported(tmp_path):
    base, adapter = tiny_state(0), {"proj.bias": torch.zeros(3)}
    save_file(base, tmp_path / "base.safetensors")
    save_file(adapter, tmp_path / "adapter.safetensors")
    model = build()
    report = load(model, tmp_path / "base.safetensors", tmp_path / "adapter.safetensors")
    assert report.overridden == ["proj.bias"]
    assert torch.equal(model.proj.bias, torch.zeros(3))


def test_missing_and_unexpected_keys_fail_strictly_naming_them(tmp_path):
    state = tiny_state()
    del state["norm.bias"]
    state["extra.weight"] = torch.zeros(2)
    path = tmp_path / "a.safetensors"
    save_file(state, path)
    model = build()
    report = load(model, path)
    assert report.missing == ["norm.bias"]
    assert report.unexpected == ["a.safetensors: extra.weight"]
    with pytest.raises(WeightsError) as error:
        report.raise_if_incomplete([path])
    assert "norm.bias" in str(error.value) and str(path) in str(error.value)


def test_converter_renames_splits_and_drops(tmp_path):
    save_file(
        {
            "w": torch.ones(6, 4),
            "b": torch.ones(3),
            "n.w": torch.ones(3),
            "n.b": torch.ones(3),
            "text.unused": torch.ones(1),
        },
        tmp_path / "a.safetensors",
    )

    def convert(key, tensor):
        if key == "w":  # one file tensor feeds two module tensors
            return [("proj.weight", tensor[:3]), ("norm.weight", tensor[3:, 0].clone())]
        return {"b": [("proj.bias", tensor)], "n.b": [("norm.bias", tensor)], "n.w": [], "text.unused": []}[key]

    model = build()
    report = load(model, tmp_path / "a.safetensors", convert=convert)
    assert report.loaded == 4 and report.dropped == 2 and not report.missing


def test_transform_patches_selected_keys_in_float32(tmp_path):
    save_file(tiny_state(), tmp_path / "a.safetensors")
    model = build()
    report = load(model, tmp_path / "a.safetensors", transform=lambda key, t: t + 1, transform_keys={"proj.weight"})
    assert report.transformed == 1
    assert torch.allclose(model.proj.weight, tiny_state()["proj.weight"] + 1)


def test_shape_mismatch_names_file_and_key(tmp_path):
    state = tiny_state()
    state["proj.weight"] = torch.zeros(5, 4)
    save_file(state, tmp_path / "a.safetensors")
    report = load(build(), tmp_path / "a.safetensors")
    assert report.mismatched and "proj.weight" in report.mismatched[0]


def test_corrupt_file_is_load_failed_naming_it(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsError) as error:
        TensorFile(path)
    assert str(path) in str(error.value)


def test_layout_check_names_the_first_missing_file(tmp_path):
    layout = WeightsLayout(tmp_path)
    (tmp_path / "Wan2.1-I2V-14B-480P").mkdir()
    (tmp_path / "Wan2.1-I2V-14B-480P" / "config.json").write_text("{}")
    with pytest.raises(WeightsError) as error:
        layout.check()
    assert "models_t5_umt5-xxl-enc-bf16.pth" in str(error.value)


def test_layout_finds_shards_by_glob_or_index(tmp_path):
    dit = tmp_path / "Wan2.1-I2V-14B-480P"
    dit.mkdir()
    for i in (1, 2, 3):
        (dit / f"diffusion_pytorch_model-0000{i}-of-00003.safetensors").write_bytes(b"")
    assert [p.name for p in WeightsLayout(tmp_path).dit_shards()] == [
        f"diffusion_pytorch_model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)
    ]
    (dit / "diffusion_pytorch_model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "diffusion_pytorch_model-00002-of-00003.safetensors", "b": "missing-shard.safetensors"}}'
    )
    with pytest.raises(WeightsError) as error:
        WeightsLayout(tmp_path).dit_shards()
    assert "missing-shard.safetensors" in str(error.value)


def test_legacy_pth_files_without_zip_are_read_whole(tmp_path):
    state = tiny_state()
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    model = build()
    load(model, tmp_path / "old.pth")
    assert torch.equal(model.norm.weight, state["norm.weight"])


def test_safetensors_reader_reads_every_dtype_like_the_library(tmp_path):
    from safetensors.torch import load_file

    from infinitetalk_engine.infinitetalk.safetensors_reader import SafetensorsReader

    tensors = {
        "f32": torch.randn(3, 4),
        "bf16": torch.randn(5).bfloat16(),
        "f16": torch.randn(2, 2).half(),
        "i64": torch.arange(6).view(2, 3),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    save_file(tensors, tmp_path / "a.safetensors", metadata={"format": "pt"})
    reader = SafetensorsReader(tmp_path / "a.safetensors")
    expected = load_file(tmp_path / "a.safetensors")
    assert sorted(reader.keys()) == sorted(expected)
    for key, value in expected.items():
        got = reader.read(key)
        assert got.dtype == value.dtype and reader.shape(key) == tuple(value.shape) and torch.equal(got, value)
    reader.close()


def test_truncated_safetensors_is_load_failed_naming_the_file(tmp_path):
    path = tmp_path / "shard.safetensors"
    save_file(tiny_state(), path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(WeightsError) as error:
        TensorFile(path)
    assert str(path) in str(error.value) and "truncated" in str(error.value)


LOAD_AND_MEASURE = """
import sys, torch
from torch import nn
from infinitetalk_engine.infinitetalk.loading import parameters_on_meta, peak_host_rss_gb, stream_into
class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        for i in range(16):
            self.register_parameter(f"w{i}", nn.Parameter(torch.empty(1024, 4096)))
with parameters_on_meta():
    model = Wide()
before = peak_host_rss_gb()
stream_into(model, [sys.argv[1]], name="wide", device="cpu", dtype=torch.bfloat16)
print(peak_host_rss_gb() - before)
"""


def test_streaming_keeps_host_memory_near_one_tensor_not_one_file(tmp_path):
    import subprocess
    import sys

    # One 256 MiB fp32 file of 16 tensors; the bf16 model is 128 MiB. Reading the whole file (or keeping its pages
    # mapped) would grow RSS by >= 384 MiB; one tensor at a time stays near 128 + 16 MiB.
    save_file({f"w{i}": torch.randn(1024, 4096) for i in range(16)}, tmp_path / "big.safetensors")
    grown = subprocess.run(
        [sys.executable, "-c", LOAD_AND_MEASURE, str(tmp_path / "big.safetensors")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    assert float(grown) * 1024 < 128 + 128, f"host RSS grew {float(grown) * 1024:.0f} MiB"
