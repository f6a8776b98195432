"""`bench/gpu_bench.py --tiny --device cpu`: the GPU bench's code path (random in-place weights, the production
sampler, the timing and report) on tiny shapes, so it is known to work before a GPU session runs it full size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_gpu_bench_runs_tiny_on_cpu_and_reports(tmp_path):
    report = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_bench.py"), "--tiny", "--device", "cpu", "--json", str(report)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    result = json.loads(report.read_text())
    assert result["clips"] == 2 and len(result["clip_seconds"]) == 2
    assert result["passes"] == 2 and result["steps"] == 2
    stride_seconds = (result["frames_per_clip"] - result["motion_frames"]) / 25
    assert abs(result["gpu_seconds_per_video_second"] - result["seconds_per_clip"] / stride_seconds) < 0.01
    assert result["phases_seconds_per_clip"]["dit_forward"] > 0 and result["phases_seconds_per_clip"]["vae_decode"] > 0
    assert result["peak_host_rss_gb"] > 0 and result["build_seconds"] > 0
    lora = result["library_lora"]
    assert lora["rank"] == 32 and lora["targets"] > 0 and lora["forward_seconds_with_lora"] > 0
    assert lora["switch_on_seconds"] >= 0 and lora["switch_off_seconds"] >= 0


@pytest.mark.parametrize("profile", ["fp8", "offload"])
def test_gpu_bench_runs_the_other_memory_profiles_tiny_on_cpu(tmp_path, profile):
    report = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_bench.py"), "--tiny", "--device", "cpu", "--profile", profile,
         "--lora-rank", "0", "--json", str(report)],
        check=True,
        capture_output=True,
        timeout=600,
    )  # fmt: skip
    result = json.loads(report.read_text())
    assert result["memory_profile"] == profile and result["phases_seconds_per_clip"]["dit_forward"] > 0
    assert (result["offload_ahead"] == 1) == (profile == "offload") and result["library_lora"] is None
    assert (result["offload_copy_stall_percent"] == 0.0) == (profile == "offload")
