"""The offload profile on CPU: the DiT's blocks are copied to the device around their own forward, never used
before their copy completed, never more than `ahead` blocks in advance, all released after each forward (also a
failed one), and the video is exactly the resident engine's."""

import numpy as np
import pytest
import torch
from in_process_engine import TINY_JOB_OPTIONS, run_tiny_job
from test_lora_library import frames
from tiny_weights import write_tiny_weights
from torch import nn

from infinitetalk_engine.contract import EngineOptions
from infinitetalk_engine.infinitetalk.engine import InfiniteTalkEngine
from infinitetalk_engine.infinitetalk.models.block_offload import BlockStreamer, visiting


def check_schedule(trace, blocks: int, ahead: int) -> None:
    """Every use follows its block's copy (since its last release), in block order; at most `ahead + 1` blocks are
    on the device at any time; nothing is left there at the end."""
    resident: set[int] = set()
    used: list[int] = []
    for what, index in trace:
        if what == "copy":
            assert index not in resident, f"block {index} copied twice"
            resident.add(index)
            assert len(resident) <= ahead + 1, f"{sorted(resident)} on the device at once"
            assert used == [] or index <= used[-1] + ahead or index == 0, f"block {index} copied too early"
        elif what == "use":
            assert index in resident, f"block {index} used before its copy"
            used.append(index)
        else:
            resident.discard(index)
    assert resident == set()
    assert used == list(range(blocks)) * (len(used) // blocks) and used, "each forward runs every block in order"


def engine(folder, profile: str, **options) -> InfiniteTalkEngine:
    extra = {**TINY_JOB_OPTIONS, "memory_profile": profile, **options}
    made = InfiniteTalkEngine(EngineOptions(weights=str(folder), device="cpu", extra=extra))
    made.load()
    return made


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize("ahead", [1, 2])
def test_an_offload_engine_makes_exactly_the_resident_video_on_the_schedule(weights, tmp_path, ahead):
    resident = engine(weights, "resident")
    offload = engine(weights, "offload", offload_ahead=str(ahead))
    assert offload.capabilities()["memory_profile"] == "offload"
    streamer = offload.models.offload
    streamer.trace = []
    assert streamer.resident == [], "between jobs no block is on the device"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    expected = frames(run_tiny_job(resident, tmp_path / "a", seed=4).output_path)
    got = frames(run_tiny_job(offload, tmp_path / "b", seed=4).output_path)
    assert np.array_equal(expected, got)
    check_schedule(streamer.trace, len(offload.models.dit.blocks), ahead)
    assert streamer.resident == []
    assert streamer.uses == [w for w, _ in streamer.trace].count("use") and streamer.stalls == 0  # CPU copies block


def test_a_failing_forward_leaves_no_block_on_the_device():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("out of memory (injected)")

    class Dit(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), Boom(), nn.Linear(4, 4)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    dit = Dit()
    streamer = BlockStreamer.install(dit, torch.device("cpu"), ahead=1, trace=[])
    with pytest.raises(RuntimeError, match="injected"):
        dit(torch.ones(1, 4))
    assert streamer.resident == []
    assert [what for what, _ in streamer.trace].count("release") == [w for w, _ in streamer.trace].count("copy")


def test_the_blocks_live_in_host_memory_and_umt5_and_clip_too(weights):
    offload = engine(weights, "offload")
    host = [p.data for p in offload.models.dit.blocks.parameters()]
    assert host and all(t.device.type == "cpu" for t in host)
    assert offload.models.t5.shared.weight.device.type == "cpu"
    assert next(offload.models.clip.parameters()).device.type == "cpu"


def test_a_visiting_model_is_on_the_device_only_while_it_works():
    class Mover(nn.Linear):
        moves: list[str] = []

        def to(self, device):
            self.moves.append(str(device))
            return self

    layer = Mover(2, 2)
    with visiting(layer, torch.device("cuda")):
        assert layer.moves == ["cuda"]
    assert layer.moves == ["cuda", "cpu"], "back home afterwards"
    with visiting(layer, torch.device("cpu")):  # already there: nothing moves
        pass
    assert layer.moves == ["cuda", "cpu"]
