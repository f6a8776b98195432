"""Jobs that share a portrait (a batch, or the same picture again) encode it once: its CLIP features and VAE
reference latents are kept, and the second job's video is bit-identical to the first's (tiny weights)."""

import numpy as np
from in_process_engine import run_tiny_job, tiny_engine
from test_lora_library import frames


def test_a_second_job_with_the_same_portrait_reuses_its_encodings(tmp_path, monkeypatch):
    engine = tiny_engine(tmp_path / "weights")
    calls = {"clip": 0, "vae": 0}
    from infinitetalk_engine.infinitetalk.models import image_encoder

    real_clip, real_vae = image_encoder.encode_image, engine.models.vae.encode

    def counting_clip(*args, **kwargs):
        calls["clip"] += 1
        return real_clip(*args, **kwargs)

    def counting_vae(*args, **kwargs):
        calls["vae"] += 1
        return real_vae(*args, **kwargs)

    monkeypatch.setattr(image_encoder, "encode_image", counting_clip)
    monkeypatch.setattr(engine.models.vae, "encode", counting_vae)
    first = frames(run_tiny_job(engine, tmp_path, seed=5).output_path)
    after_first = dict(calls)
    second = frames(run_tiny_job(engine, tmp_path, seed=5).output_path)
    assert after_first["clip"] == 1 and after_first["vae"] >= 2  # the reference and its first motion frame
    assert calls["clip"] == 1, "CLIP ran once for both jobs"
    assert calls["vae"] - after_first["vae"] == after_first["vae"] - 2, "the second job skipped the reference encode"
    assert np.array_equal(first, second)
