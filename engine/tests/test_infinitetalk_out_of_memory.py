"""A GPU out-of-memory in any phase of a job fails that job with `gpu_out_of_memory`, a message that says what
ran out, and the engine serves the next job (tiny weights in process; the OOM is injected)."""

import pytest
import torch
from in_process_engine import run_tiny_job, tiny_engine

from infinitetalk_engine.contract import EngineError


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory.mktemp("weights"))


def out_of_memory(*_args, **_kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


# Where the OOM strikes: wav2vec2 features, the DiT's forward pass, the VAE decode.
PHASES = {
    "audio features": lambda models: (models, "audio"),
    "denoising": lambda models: (models.dit, "forward"),
    "vae decode": lambda models: (models.vae, "decode"),
}


@pytest.mark.parametrize("phase", PHASES)
def test_an_out_of_memory_fails_the_job_and_the_next_job_runs(engine, tmp_path, monkeypatch, phase):
    # Given a job whose phase runs out of GPU memory
    owner, name = PHASES[phase](engine.models)
    with monkeypatch.context() as patch:
        patch.setattr(owner, name, out_of_memory)
        # When it runs
        with pytest.raises(EngineError) as failure:
            run_tiny_job(engine, tmp_path, resolution="480p")
    # Then it fails with gpu_out_of_memory, naming the profile, the resolution and the free memory
    assert failure.value.code == "gpu_out_of_memory" and not failure.value.retryable
    message = str(failure.value)
    assert "resident memory profile" in message and "480p" in message and "free" in message
    assert "Tried to allocate 20.00 GiB" in message
    # And the next job runs on the same engine
    result = run_tiny_job(engine, tmp_path)
    assert result.frames > 0
